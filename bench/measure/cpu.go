// Package measure holds what the benchmark programs measure with: CPU time of this process and
// of a process tree (a Temporal server, a PostgreSQL cluster) read from /proc, so each side of
// a comparison is charged only for its own processes on a machine where other things run;
// percentiles; and waiting for a server to answer.
package measure

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU is this process's user and system CPU time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TreeCPU is the CPU time of the process and all its live descendants (a PostgreSQL cluster's
// backends are the postmaster's children). Time of descendants that already exited is
// counted through the parent's cutime/cstime.
func TreeCPU(pid int) time.Duration {
	type proc struct {
		ppid int
		cpu  time.Duration
	}
	procs := map[int]proc{}
	files, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(s[end+2:])
		if len(fields) < 15 {
			continue
		}
		id, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		ppid, _ := strconv.Atoi(fields[1])
		var ticks int64
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			n, _ := strconv.ParseInt(fields[i], 10, 64)
			ticks += n
		}
		procs[id] = proc{ppid: ppid, cpu: time.Duration(ticks) * time.Second / 100} // USER_HZ = 100
	}
	var total time.Duration
	for id, p := range procs {
		for cur := id; cur != 0; {
			if cur == pid {
				total += p.cpu
				break
			}
			parent, ok := procs[cur]
			if !ok {
				break
			}
			cur = parent.ppid
		}
	}
	return total
}

// Settle waits until cpu (a cumulative CPU reading, such as SelfCPU plus a database's
// TreeCPU) grows by less than idle per second for two seconds running, or until max has
// passed, and reports whether it settled. A server finishes work asynchronously (Temporal's
// visibility queue records runs after their start has been answered); measuring a phase up
// to when it settles charges that work to the phase that caused it, not to the next one.
func Settle(cpu func() time.Duration, idle time.Duration, max time.Duration) bool {
	deadline := time.Now().Add(max)
	quiet, last := 0, cpu()
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		now := cpu()
		if now-last < idle {
			quiet++
		} else {
			quiet = 0
		}
		last = now
		if quiet >= 2 {
			return true
		}
	}
	return false
}
