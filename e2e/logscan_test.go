package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
)

var (
	logOnce sync.Once
	logFile *os.File
)

// testLog is the file every in-process component of these tests logs to.
func testLog() *os.File {
	logOnce.Do(func() {
		f, err := os.CreateTemp("", "cairn-e2e-log-")
		if err != nil {
			panic(err)
		}
		logFile = f
	})
	return logFile
}

// logScan runs the tests, then reads every line the in-process workers, starters and dev
// logged (JSON, as CAIRN_LOG_FORMAT=json writes them): each must be JSON and none may hold an
// email address, though the tests send many. A line that does fails the run.
type logScan struct{ m *testing.M }

func (l logScan) Run() int {
	code := l.m.Run()
	f := testLog()
	defer os.Remove(f.Name())
	if _, err := f.Seek(0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "log scan:", err)
		return 1
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lines, bad := 0, 0
	for sc.Scan() {
		lines++
		line := sc.Bytes()
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			bad++
			fmt.Fprintf(os.Stderr, "log scan: not a JSON line: %s\n", line)
			continue
		}
		if emailLike.Match(line) {
			bad++
			fmt.Fprintf(os.Stderr, "log scan: a log line holds an email address: %s\n", line)
		}
	}
	if bad > 0 {
		fmt.Fprintf(os.Stderr, "log scan: %d of %d log lines are bad\n", bad, lines)
		if code == 0 {
			code = 1
		}
	}
	return code
}
