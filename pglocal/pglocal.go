// Package pglocal runs a PostgreSQL cluster from the binaries installed on this machine, for
// `cairn dev` and the tests when no DATABASE_URL is given.
package pglocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options says where the cluster keeps its data.
type Options struct {
	// DataDir holds the cluster. An existing cluster there is reused (and, if a previous
	// process left it running, adopted), so dev keeps its data across restarts.
	DataDir string
	// Ephemeral trades durability for speed (fsync off): for tests, never for data you keep.
	Ephemeral bool
	// Database is created when missing; default "cairn".
	Database string
	// Settings are server settings (name → value) for this start, e.g. shared_buffers for a
	// benchmark that loads millions of rows.
	Settings map[string]string
}

// Cluster is a running local PostgreSQL.
type Cluster struct {
	URL     string
	dataDir string
	bin     string
	cred    *syscall.Credential
	adopted bool
	tempDir string // removed by Stop (StartTemp)
}

// ErrNoPostgres explains what to do when nothing can be started.
var ErrNoPostgres = errors.New("no PostgreSQL: set DATABASE_URL to a PostgreSQL ≥ 14 server, or install the server binaries (Debian: apt-get install postgresql) so Cairn can start a local one")

// Start initialises the cluster if needed and starts it on a free loopback port.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Database == "" {
		opts.Database = "cairn"
	}
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dataDir: dataDir, bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root; run it as the postgres user the package creates.
		if c.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("postgres data dir: %w", err)
	}
	if c.cred != nil {
		if dir := Unreachable(filepath.Dir(dataDir)); dir != "" {
			return nil, fmt.Errorf("running as root, so PostgreSQL runs as the postgres user, which cannot reach %s (%s is not searchable by others): choose a state folder it can reach (e.g. under /var/tmp), or set DATABASE_URL", dataDir, dir)
		}
	}
	if err := c.chown(dataDir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if out, err := c.run(ctx, "initdb", "-D", dataDir, "-U", "cairn", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
			return nil, fmt.Errorf("initdb: %w: %s", err, out)
		}
	}
	port, running := c.runningPort()
	if running {
		c.adopted = true
	} else {
		if port, err = c.port(); err != nil {
			return nil, err
		}
		args := []string{"start", "-D", dataDir, "-w", "-t", "60", "-l", filepath.Join(dataDir, "server.log"),
			"-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200", port)}
		if opts.Ephemeral {
			args[len(args)-1] += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		}
		for _, k := range slices.Sorted(maps.Keys(opts.Settings)) {
			args[len(args)-1] += fmt.Sprintf(" -c %s=%s", k, opts.Settings[k])
		}
		if out, err := c.run(ctx, "pg_ctl", args...); err != nil {
			log, _ := os.ReadFile(filepath.Join(dataDir, "server.log"))
			return nil, fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, tail(log, 2000))
		}
	}
	admin := fmt.Sprintf("postgres://cairn@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := createDatabase(ctx, admin, opts.Database); err != nil {
		c.Stop()
		return nil, err
	}
	c.URL = fmt.Sprintf("postgres://cairn@127.0.0.1:%d/%s?sslmode=disable", port, opts.Database)
	return c, nil
}

// Stop shuts the cluster down (fast mode: open sessions are ended, data is kept).
func (c *Cluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.tempDir != "" {
		defer os.RemoveAll(c.tempDir)
	}
	if out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", "fast", "-w"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// StartTemp starts a throwaway cluster (fsync off, plus any settings) in a new temporary
// folder that Stop removes: for tests and benchmarks.
func StartTemp(ctx context.Context, settings map[string]string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "cairn-pg-")
	if err != nil {
		return nil, err
	}
	// MkdirTemp makes the folder private; the postgres user (when running as root) must enter it.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c, err := Start(ctx, Options{DataDir: filepath.Join(dir, "data"), Ephemeral: true, Settings: settings})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.tempDir = dir
	return c, nil
}

// port reuses the port of the cluster's last start when it is free, so the URL dev prints
// stays the same from one start to the next.
func (c *Cluster) port() (int, error) {
	file := filepath.Join(c.dataDir, "cairn.port")
	if b, err := os.ReadFile(file); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				l.Close()
				return p, nil
			}
		}
	}
	p, err := freePort()
	if err != nil {
		return 0, err
	}
	_ = os.WriteFile(file, []byte(strconv.Itoa(p)), 0o644)
	return p, nil
}

// runningPort reads postmaster.pid: a cluster left running by a killed process is reused.
func (c *Cluster) runningPort() (int, bool) {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, _ := strconv.Atoi(strings.TrimSpace(lines[3]))
	if pid <= 0 || port <= 0 || syscall.Kill(pid, 0) != nil {
		return 0, false
	}
	return port, true
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = os.TempDir()
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// pg_ctl's server must outlive a cancelled ctx only through Stop; don't wait on its pipes.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (c *Cluster) chown(dir string) error {
	if c.cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(c.cred.Uid), int(c.cred.Gid))
	})
}

// Unreachable returns the first folder on the way to dir that users other than its owner
// cannot pass through, or "": when running as root, PostgreSQL (run as the postgres user)
// cannot reach a data folder below it.
func Unreachable(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

func findBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root; there is no postgres user to run it as (install the postgresql package, or set DATABASE_URL): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func createDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to local postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// PID is the cluster's postmaster process id, whose children are its backends (benchmarks
// count their CPU time).
func (c *Cluster) PID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("postgres pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("postgres pid: %q: %w", first, err)
	}
	return pid, nil
}
