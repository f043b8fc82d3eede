package measure

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a cairn process a benchmark runs, may kill with SIGKILL and start again.
type Proc struct {
	Name, Log string // its name in the report; the file its output is appended to
	Args, Env []string
	Cmd       *exec.Cmd
	// spent is the CPU time of its earlier lives (before a kill).
	spent time.Duration
}

// Start runs bin with the process's arguments and environment, its output appended to Log.
func (p *Proc) Start(bin string) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.Cmd = exec.Command(bin, p.Args...)
	p.Cmd.Env = append(os.Environ(), p.Env...)
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	return p.Cmd.Start()
}

// CPU is the CPU time of the process and its children, its earlier lives included.
func (p *Proc) CPU() time.Duration {
	if p.Cmd == nil || p.Cmd.Process == nil || p.Cmd.ProcessState != nil {
		return p.spent
	}
	return p.spent + TreeCPU(p.Cmd.Process.Pid)
}

// Kill9 kills the process with SIGKILL and waits for it.
func (p *Proc) Kill9() {
	p.spent = p.CPU()
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	_ = p.Cmd.Wait()
}

// Stop asks the process to stop (SIGTERM) and kills it after grace.
func (p *Proc) Stop(grace time.Duration) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		p.Kill9()
	}
}
