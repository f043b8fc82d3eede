// Command parked measures what Cairn costs Temporal, from outside, against a stock Temporal
// dev server (the `temporal` CLI's `server start-dev`, SQLite file with WAL) run as its own
// process: how fast runs reach their first wait when the server is saturated, and how fast
// parked runs react to an event, each beside a raw baseline of the same shape in the same run.
//
//   - park: N contacts enter a journey that waits 30 days; the baseline is raw SignalWithStart
//     calls (64 at a time) of a workflow that hears the signal and waits 30 days.
//   - react: M of the parked runs get an event that ends them (Cairn: an exit condition on
//     the event, through the starter's HTTP API and dispatcher; raw: a signal the workflow
//     completes on).
//
// Each raw phase runs twice, before and after Cairn's, and Cairn is compared with the two
// pooled: every phase adds runs to the server's SQLite file, and later phases cost more. The
// server's CPU is read from /proc for its process alone; this process (callers, starter,
// workers) and PostgreSQL are reported beside it.
//
//	go install github.com/temporalio/cli/cmd/temporal@v1.5.1   # once
//	go run ./bench/parked -park 2000 -react 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/bench/measure"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/worker"
)

func main() {
	o := options{}
	flag.IntVar(&o.park, "park", 2000, "runs parked on each side")
	flag.IntVar(&o.react, "react", 1000, "parked runs that get an event ending them, on each side")
	flag.IntVar(&o.callers, "callers", 64, "concurrent callers (raw SignalWithStart / signals, HTTP posts)")
	flag.IntVar(&o.dispatch, "dispatch", 0, "the starter's dispatch concurrency (0: its default)")
	flag.StringVar(&o.temporal, "temporal", "", "the temporal CLI (default: $PATH, then $(go env GOPATH)/bin)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "parked:", err)
		os.Exit(1)
	}
}

type options struct {
	park, react, callers, dispatch int
	temporal                       string
}

const (
	writeKey  = "wk_parked"
	rawQueue  = "raw-parked"
	rawType   = "RawJourney"
	exitEvent = "Exit"
	journeyID = "parked"
	// The journey waits 30 days on its first step and leaves when the contact sends Exit.
	doc = "id: parked\ntrigger: {event: Signed Up}\nexit: {event: Exit}\nsteps: [{id: parked, wait: 30d}, {add_tag: done}]"
)

// rawJourney is the baseline: what a hand-written journey workflow does at the least — it
// hears its trigger signal, waits 30 days, and ends when an Exit event arrives.
func rawJourney(ctx workflow.Context, in contract.Input) error {
	exited := false
	ch := workflow.GetSignalChannel(ctx, contract.SignalEvent)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var ev contract.Event
			ch.Receive(ctx, &ev)
			if ev.Name == exitEvent {
				exited = true
			}
		}
	})
	_, err := workflow.AwaitWithTimeout(ctx, 30*24*time.Hour, func() bool { return exited })
	return err
}

// watch records, per workflow id, when a run first started a timer (parked) and when it
// returned (ended), live (not during replay).
type watch struct {
	interceptor.WorkerInterceptorBase
	mu     sync.Mutex
	parked map[string]time.Time
	ended  map[string]time.Time
}

func newWatch() *watch {
	return &watch{parked: map[string]time.Time{}, ended: map[string]time.Time{}}
}

func (w *watch) mark(m map[string]time.Time, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := m[id]; !ok {
		m[id] = time.Now()
	}
}

func (w *watch) count(prefix string, ended bool) (n int, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.parked
	if ended {
		m = w.ended
	}
	for id, at := range m {
		if strings.HasPrefix(id, prefix) {
			n++
			if at.After(last) {
				last = at
			}
		}
	}
	return n, last
}

func (w *watch) at(id string, ended bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ended {
		t, ok := w.ended[id]
		return t, ok
	}
	t, ok := w.parked[id]
	return t, ok
}

func (w *watch) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &watchIn{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, w: w}
}

type watchIn struct {
	interceptor.WorkflowInboundInterceptorBase
	w *watch
}

func (i *watchIn) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&watchOut{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, w: i.w})
}

func (i *watchIn) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	res, err := i.Next.ExecuteWorkflow(ctx, in)
	if !workflow.IsReplaying(ctx) {
		i.w.mark(i.w.ended, workflow.GetInfo(ctx).WorkflowExecution.ID)
	}
	return res, err
}

type watchOut struct {
	interceptor.WorkflowOutboundInterceptorBase
	w *watch
}

func (o *watchOut) parked(ctx workflow.Context) {
	if !workflow.IsReplaying(ctx) {
		o.w.mark(o.w.parked, workflow.GetInfo(ctx).WorkflowExecution.ID)
	}
}

func (o *watchOut) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	if d > time.Hour {
		o.parked(ctx)
	}
	return o.Next.NewTimerWithOptions(ctx, d, opts)
}

func (o *watchOut) AwaitWithTimeout(ctx workflow.Context, d time.Duration, cond func() bool) (bool, error) {
	if d > time.Hour {
		o.parked(ctx)
	}
	return o.Next.AwaitWithTimeout(ctx, d, cond)
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	bin, err := findTemporal(o.temporal)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cairn-parked-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port := dev.FreePort()
	args := []string{"server", "start-dev", "--headless", "--port", fmt.Sprint(port), "--db-filename", filepath.Join(dir, "temporal.db"),
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal", "--log-level", "error"}
	for name, typ := range contract.SearchAttributes {
		args = append(args, "--search-attribute", name+"="+typ.String())
	}
	server := exec.Command(bin, args...)
	server.Stdout, server.Stderr = os.Stderr, os.Stderr
	if err := server.Start(); err != nil {
		return err
	}
	defer func() { _ = server.Process.Signal(syscall.SIGTERM); _ = server.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	pg, err := pglocal.StartTemp(ctx, nil)
	if err != nil {
		return err
	}
	defer pg.Stop()
	pgPID, err := pg.PID()
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, pg.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return err
	}
	j, err := journey.Decode([]byte(doc))
	if err != nil {
		return err
	}
	v, _, err := crm.ApplyJourney(ctx, pool, j, doc)
	if err != nil {
		return err
	}
	var cl client.Client
	for deadline := time.Now().Add(60 * time.Second); ; {
		cl, err = client.Dial(client.Options{HostPort: addr, Logger: sdklog.NewStructuredLogger(quiet)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("temporal server: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer cl.Close()
	if err := cluster.CheckSearchAttributes(ctx, cl, "default"); err != nil {
		return err
	}

	// Cairn encrypts its payloads, as it does in production; the raw baseline does not.
	ring, err := codec.ParseKeyRing(codec.NewKeyEntry("parked"))
	if err != nil {
		return err
	}
	cc := codec.Config{Ring: ring}
	cdc, err := cc.Build(pool, quiet)
	if err != nil {
		return err
	}
	cairnTemporal := cluster.Config{Address: addr, Namespace: "default", Codec: cdc}
	copts, err := cairnTemporal.Options(quiet)
	if err != nil {
		return err
	}
	ccl, err := client.Dial(copts)
	if err != nil {
		return err
	}
	defer ccl.Close()
	w := newWatch()
	raw := sdkworker.New(cl, rawQueue, sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{w}})
	raw.RegisterWorkflowWithOptions(rawJourney, workflow.RegisterOptions{Name: rawType})
	cw := sdkworker.New(ccl, contract.TaskQueue, sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{w}})
	worker.Register(cw, &activities.Activities{DB: pool})
	for _, x := range []sdkworker.Worker{raw, cw} {
		if err := x.Start(); err != nil {
			return err
		}
		defer x.Stop()
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	go starter.Run(ctx, starter.Config{Temporal: cluster.Config{Address: addr, Namespace: "default"}, DatabaseURL: pg.URL, Codec: cc,
		HTTPAddr: httpAddr, WriteKeys: []string{writeKey}, AdminKey: "ak", Logger: quiet, DispatchConcurrency: o.dispatch})
	if err := measure.WaitHTTP("http://" + httpAddr + "/healthz"); err != nil {
		return err
	}
	serverPID := server.Process.Pid
	meter := func() [3]time.Duration {
		return [3]time.Duration{measure.TreeCPU(serverPID), measure.SelfCPU(), measure.TreeCPU(pgPID)}
	}
	fmt.Printf("stock Temporal dev server (temporal CLI, SQLite file, WAL) as its own process; local PostgreSQL; workers and starter in this process\n")
	fmt.Printf("park %d runs per side, %d callers; then %d of them react to an event\n\n", o.park, o.callers, o.react)

	// Park: raw SignalWithStart, then Cairn through HTTP, then raw again. Each side adds
	// thousands of runs to the server's SQLite file and later phases cost more, so Cairn is
	// compared with both raw phases pooled, the one before it and the one after.
	rawParkPhase := func(prefix string) result {
		return phase(meter, func() error {
			return fanOut(o.park, o.callers, func(i int) error {
				id := fmt.Sprintf("%s%d", prefix, i)
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := cl.SignalWithStartWorkflow(cctx, id, contract.SignalEvent, contract.Event{ID: int64(i + 1), Name: "Signed Up"},
					client.StartWorkflowOptions{ID: id, TaskQueue: rawQueue}, rawType,
					contract.Input{Journey: v.Definition, Version: v.Version, ContactID: int64(i + 1), Revision: contract.Revision})
				return err
			})
		}, func() (int, time.Time) { return w.count(prefix, false) }, o.park)
	}
	rawPark1 := rawParkPhase("raw:")
	hc := &http.Client{Timeout: 30 * time.Second}
	post := func(body string) error {
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/track", strings.NewReader(body))
		req.SetBasicAuth(writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	cairnPark := phase(meter, func() error {
		return fanOut(o.park, o.callers, func(i int) error {
			return post(fmt.Sprintf(`{"userId":"p%d","event":"Signed Up","messageId":"park-%d"}`, i, i))
		})
	}, func() (int, time.Time) { return w.count("journey:parked:", false) }, o.park)
	rawPark2 := rawParkPhase("raw2:")
	rawPark := pooled(rawPark1, rawPark2)

	var lagP50, lagP99, spanS float64
	if err := pool.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - received_at)),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - received_at)),
		extract(epoch FROM max(dispatched_at) - min(received_at))
		FROM events WHERE name = 'Signed Up'`).Scan(&lagP50, &lagP99, &spanS); err != nil {
		return err
	}
	fmt.Printf("Cairn park: accept → dispatched p50 %.0f ms, p99 %.0f ms; all dispatched %.1f s after the first was accepted\n\n", lagP50*1000, lagP99*1000, spanS)

	// React: M of each side's parked runs get their exit.
	sent := sync.Map{}
	rawReactPhase := func(prefix string, firstID int64) result {
		return phase(meter, func() error {
			return fanOut(o.react, o.callers, func(i int) error {
				id := fmt.Sprintf("%s%d", prefix, i)
				sent.Store(id, time.Now())
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				return cl.SignalWorkflow(cctx, id, "", contract.SignalEvent, contract.Event{ID: firstID + int64(i), Name: exitEvent})
			})
		}, func() (int, time.Time) { return w.count(prefix, true) }, o.react)
	}
	rawReact1 := rawReactPhase("raw:", 1_000_000)
	contacts := map[string]int64{}
	rows, err := pool.Query(ctx, `SELECT external_id, id FROM contacts`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var ext string
		var id int64
		if err := rows.Scan(&ext, &id); err != nil {
			return err
		}
		contacts[ext] = id
	}
	rows.Close()
	cairnReact := phase(meter, func() error {
		return fanOut(o.react, o.callers, func(i int) error {
			sent.Store(contract.WorkflowID(journeyID, contacts[fmt.Sprintf("p%d", i)]), time.Now())
			return post(fmt.Sprintf(`{"userId":"p%d","event":"Exit","messageId":"exit-%d"}`, i, i))
		})
	}, func() (int, time.Time) { return w.count("journey:parked:", true) }, o.react)
	rawReact2 := rawReactPhase("raw2:", 2_000_000)
	rawReact := pooled(rawReact1, rawReact2)
	latencies := func(prefix string) []time.Duration {
		var out []time.Duration
		sent.Range(func(k, v any) bool {
			id := k.(string)
			if !strings.HasPrefix(id, prefix) {
				return true
			}
			if end, ok := w.at(id, true); ok {
				out = append(out, end.Sub(v.(time.Time)))
			}
			return true
		})
		return out
	}
	rawLat, cairnLat := append(latencies("raw:"), latencies("raw2:")...), latencies("journey:parked:")

	row := func(name string, f func(p result) string, r, c result) {
		fmt.Printf("%-44s %14s %14s\n", name, f(r), f(c))
	}
	fmt.Printf("%-44s %14s %14s\n", "", "raw (pooled)", "Cairn")
	fmt.Printf("%-44s %14s\n", "park: raw before / after, runs per second", fmt.Sprintf("%.1f / %.1f", rawPark1.rate(), rawPark2.rate()))
	fmt.Printf("%-44s %14s\n", "react: raw before / after, runs per second", fmt.Sprintf("%.1f / %.1f", rawReact1.rate(), rawReact2.rate()))
	row("park: runs reached their wait", func(p result) string { return fmt.Sprint(p.done) }, rawPark, cairnPark)
	row("park: calls failed", func(p result) string { return fmt.Sprint(p.failed) }, rawPark, cairnPark)
	row("park: runs parked per second", func(p result) string { return fmt.Sprintf("%.1f", p.rate()) }, rawPark, cairnPark)
	row("park: server CPU per run", func(p result) string { return measure.MS(p.cpu[0] / time.Duration(max(p.done, 1))) }, rawPark, cairnPark)
	row("park: this process CPU per run", func(p result) string { return measure.MS(p.cpu[1] / time.Duration(max(p.done, 1))) }, rawPark, cairnPark)
	row("park: PostgreSQL CPU per run", func(p result) string { return measure.MS(p.cpu[2] / time.Duration(max(p.done, 1))) }, rawPark, cairnPark)
	fmt.Printf("%-44s %14s %13.2f×\n", "park: rate Cairn / raw", "", cairnPark.rate()/rawPark.rate())
	fmt.Printf("%-44s %14s %13.2f×\n", "park: server CPU per run Cairn / raw", "", perRun(cairnPark, 0)/perRun(rawPark, 0))
	fmt.Printf("%-44s %14s %13.2f×\n", "park: all CPU per run Cairn / raw", "", perRunAll(cairnPark)/perRunAll(rawPark))
	row("react: runs ended", func(p result) string { return fmt.Sprint(p.done) }, rawReact, cairnReact)
	row("react: runs ended per second", func(p result) string { return fmt.Sprintf("%.1f", p.rate()) }, rawReact, cairnReact)
	fmt.Printf("%-44s %14s %14s\n", "react: event → ended p50", measure.MS(measure.Percentile(rawLat, 50)), measure.MS(measure.Percentile(cairnLat, 50)))
	fmt.Printf("%-44s %14s %14s\n", "react: event → ended p99", measure.MS(measure.Percentile(rawLat, 99)), measure.MS(measure.Percentile(cairnLat, 99)))
	row("react: server CPU per reaction", func(p result) string { return measure.MS(p.cpu[0] / time.Duration(max(p.done, 1))) }, rawReact, cairnReact)
	row("react: this process CPU per reaction", func(p result) string { return measure.MS(p.cpu[1] / time.Duration(max(p.done, 1))) }, rawReact, cairnReact)
	row("react: PostgreSQL CPU per reaction", func(p result) string { return measure.MS(p.cpu[2] / time.Duration(max(p.done, 1))) }, rawReact, cairnReact)
	fmt.Printf("%-44s %14s %13.2f×\n", "react: rate Cairn / raw", "", cairnReact.rate()/rawReact.rate())
	fmt.Printf("%-44s %14s %13.2f×\n", "react: all CPU per reaction Cairn / raw", "", perRunAll(cairnReact)/perRunAll(rawReact))
	return nil
}

// pooled is two phases of the same side taken as one: their runs, time and CPU added, so its
// rate and CPU per run are the two phases' together.
func pooled(a, b result) result {
	r := result{done: a.done + b.done, took: a.took + b.took, failed: a.failed + b.failed}
	for i := range r.cpu {
		r.cpu[i] = a.cpu[i] + b.cpu[i]
	}
	return r
}

// result is one phase: how many runs got there, how long it took, the CPU it cost (server,
// this process, PostgreSQL) and the calls that failed.
type result struct {
	done   int
	took   time.Duration
	cpu    [3]time.Duration
	failed int64
}

func (r result) rate() float64 { return float64(r.done) / r.took.Seconds() }

func perRun(r result, i int) float64 { return float64(r.cpu[i]) / float64(max(r.done, 1)) }

func perRunAll(r result) float64 {
	return float64(r.cpu[0]+r.cpu[1]+r.cpu[2]) / float64(max(r.done, 1))
}

// phase runs send, then waits until count reports want runs (or five minutes pass), and
// measures from the first call to the last run getting there.
func phase(meter func() [3]time.Duration, send func() error, count func() (int, time.Time), want int) result {
	before := meter()
	start := time.Now()
	var failed atomic.Int64
	if err := send(); err != nil {
		var f *failures
		if errors.As(err, &f) {
			failed.Store(f.n)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	var n int
	var last time.Time
	for {
		n, last = count()
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let the tail of the work (run ends recorded, dispatch marks) be charged to this phase.
	time.Sleep(time.Second)
	after := meter()
	r := result{done: n, took: last.Sub(start), failed: failed.Load()}
	for i := range r.cpu {
		r.cpu[i] = after[i] - before[i]
	}
	return r
}

type failures struct{ n int64 }

func (f *failures) Error() string { return fmt.Sprintf("%d calls failed", f.n) }

// fanOut calls fn for 0..n-1 from k goroutines (closed loop: as fast as they answer).
func fanOut(n, k int, fn func(int) error) error {
	next := atomic.Int64{}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if fn(i) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return &failures{n: f}
	}
	return nil
}

func findTemporal(flagged string) (string, error) {
	if flagged != "" {
		return flagged, nil
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "temporal")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", errors.New("no temporal CLI: install it with `go install github.com/temporalio/cli/cmd/temporal@v1.5.1`, or pass -temporal PATH")
}
