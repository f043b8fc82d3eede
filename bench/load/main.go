// Command load measures the starter: it posts Segment track events at a fixed rate and, in
// the same run, makes the same number of raw SignalWithStart calls at the same rate as a
// baseline, against one embedded Temporal server, a local PostgreSQL and a worker.
//
//	go run ./bench/load -rate 200 -for 20s
//	go run ./bench/load -rate 200 -for 20s -metrics -tracing   # as production runs observed
//
// -metrics turns on the Temporal SDK's metrics and scrapes /metrics every second (Cairn's own
// counters are always kept); -tracing exports every span over OTLP/HTTP to a receiver in
// this process that decodes and drops them. Compare the CPU lines of a run with both and one
// without. It also prints sizing figures: the starter's own CPU per event, PostgreSQL's
// growth per contact, and the process's heap per parked run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/dev/embedded"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/telemetry"
	"github.com/cairnhq/cairn/worker"
)

func main() {
	rate := flag.Int("rate", 200, "events per second")
	dur := flag.Duration("for", 20*time.Second, "how long each phase sends")
	withMetrics := flag.Bool("metrics", false, "record the Temporal SDK's metrics and scrape /metrics every second")
	withTracing := flag.Bool("tracing", false, "export every span over OTLP/HTTP (to a receiver in this process)")
	flag.Parse()
	if !*withMetrics {
		telemetry.DisableSDKMetrics()
	}
	if *withTracing {
		stop, err := startTracing()
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		defer stop()
	}
	if err := run(*rate, *dur, *withMetrics, *withTracing); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

const writeKey = "wk_load"

// The journey starts and then waits a day: what is measured is getting contacts in.
const doc = "id: load\ntrigger: {event: Signed Up}\nsteps: [{wait: 1d}, {add_tag: done}]"

func run(rate int, dur time.Duration, withMetrics, withTracing bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	dir, err := os.MkdirTemp("", "cairn-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pg, err := pglocal.StartTemp(ctx, nil)
	if err != nil {
		return err
	}
	defer pg.Stop()
	srv, err := embedded.Start(embedded.Options{DatabaseFile: filepath.Join(dir, "temporal.db"), Namespace: "default",
		SearchAttributes: contract.SearchAttributes, UIPort: -1})
	if err != nil {
		return err
	}
	defer srv.Stop()
	tc := cluster.Config{Address: srv.GRPCAddress(), Namespace: "default"}
	addr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	go worker.Run(ctx, worker.Config{Temporal: tc, DatabaseURL: pg.URL, Logger: quiet})
	go starter.Run(ctx, starter.Config{Temporal: tc, DatabaseURL: pg.URL, HTTPAddr: addr, WriteKeys: []string{writeKey}, AdminKey: "ak", Logger: quiet})
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
	cl, err := client.Dial(client.Options{HostPort: srv.GRPCAddress(), Logger: sdklog.NewStructuredLogger(quiet)})
	if err != nil {
		return err
	}
	defer cl.Close()
	waitHTTP("http://" + addr + "/healthz")
	n := int(float64(rate) * dur.Seconds())
	fmt.Printf("%d events at %d/s per phase; embedded Temporal (SQLite, WAL), local PostgreSQL, one worker, one starter, one process; metrics %s, tracing %s\n\n",
		n, rate, onOff(withMetrics), onOff(withTracing))
	if withMetrics {
		go scrape(ctx, "http://"+addr+"/metrics")
	}

	// Baseline: what Temporal costs alone: SignalWithStart of the same workflow, same rate.
	cpu0, pg0 := cpuTime(), postgresCPU(pg.PID())
	base := pace(rate, n, func(i int) error {
		id := fmt.Sprintf("journey:raw:%d", i)
		_, err := cl.SignalWithStartWorkflow(ctx, id, contract.SignalEvent, contract.Event{Name: "Signed Up"},
			client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}, contract.WorkflowType,
			contract.Input{Journey: v.Definition, Version: v.Version, ContactID: int64(-i - 1)})
		return err
	})
	baseCPU, basePG := cpuTime()-cpu0, postgresCPU(pg.PID())-pg0

	// Cairn: the same events through the starter's HTTP API and dispatcher.
	httpc := &http.Client{Timeout: 10 * time.Second}
	posted := make([]time.Time, n)
	var dbBefore int64
	if err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbBefore); err != nil {
		return err
	}
	heapBefore := heapInUse()
	cpu0, pg0 = cpuTime(), postgresCPU(pg.PID())
	res := pace(rate, n, func(i int) error {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/track",
			strings.NewReader(fmt.Sprintf(`{"userId":"u%d","event":"Signed Up","messageId":"m%d"}`, i, i)))
		req.SetBasicAuth(writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		posted[i] = time.Now()
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
	// Wait for every run to have started, then read start times from Temporal.
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var left int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL`).Scan(&left)
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cairnCPU, cairnPG := cpuTime()-cpu0, postgresCPU(pg.PID())-pg0
	heapAfter := heapInUse()
	var dbAfter int64
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		return err
	}
	if err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbAfter); err != nil {
		return err
	}
	started, err := startTimes(ctx, cl, pool)
	if err != nil {
		return err
	}
	var e2s []time.Duration
	for i, at := range posted {
		if s, ok := started[fmt.Sprintf("u%d", i)]; ok {
			e2s = append(e2s, s.Sub(at))
		}
	}
	fmt.Printf("%-34s %12s %12s\n", "", "raw SWS", "Cairn")
	fmt.Printf("%-34s %12.1f %12.1f\n", "accepted per second", base.rate, res.rate)
	fmt.Printf("%-34s %12s %12s\n", "call p50 (SWS / HTTP accept)", ms(base.p(50)), ms(res.p(50)))
	fmt.Printf("%-34s %12s %12s\n", "call p99 (SWS / HTTP accept)", ms(base.p(99)), ms(res.p(99)))
	fmt.Printf("%-34s %12s %12s\n", "event → workflow started p50", ms(base.p(50)), ms(pct(e2s, 50)))
	fmt.Printf("%-34s %12s %12s\n", "event → workflow started p99", ms(base.p(99)), ms(pct(e2s, 99)))
	fmt.Printf("%-34s %12s %12s\n", "CPU per 1,000 events (this process)", ms(baseCPU*1000/time.Duration(n)), ms(cairnCPU*1000/time.Duration(n)))
	fmt.Printf("%-34s %12s %12s\n", "  + PostgreSQL CPU per 1,000", ms(basePG*1000/time.Duration(n)), ms(cairnPG*1000/time.Duration(n)))
	fmt.Printf("%-34s %12s %12.2f×\n", "CPU ratio Cairn / raw (all)", "", float64(cairnCPU+cairnPG)/float64(baseCPU+basePG))
	fmt.Printf("%-34s %12d %12d\n", "errors", base.errors, res.errors)
	fmt.Printf("%-34s %12s %12d\n", "runs started", "", len(e2s))
	own := cairnCPU - baseCPU + cairnPG
	fmt.Printf("\nsizing (from this run)\n")
	fmt.Printf("%-34s %12s\n", "starter CPU per 1,000 events", ms(own*1000/time.Duration(n)))
	if own > 0 {
		fmt.Printf("%-34s %12.0f\n", "  → events/s per starter core", float64(n)/own.Seconds())
	}
	fmt.Printf("%-34s %10.0f B\n", "PostgreSQL growth per contact", float64(dbAfter-dbBefore)/float64(n))
	fmt.Printf("%-34s %10.0f B\n", "heap per parked run (all caches)", float64(heapAfter-heapBefore)/float64(max(1, len(e2s))))
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// heapInUse is the process's live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// scrape reads /metrics every second, as a Prometheus server would.
func scrape(ctx context.Context, url string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if resp, err := http.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// startTracing points the OTLP exporter at a receiver in this process that reads and decodes
// every export, as a collector would, and drops it.
func startTracing() (func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		_ = proto.Unmarshal(b, &req)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})}
	go srv.Serve(ln)
	os.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	shutdown, err := telemetry.Setup(context.Background(), "cairn-load")
	if err != nil {
		srv.Close()
		return nil, err
	}
	return func() { _ = shutdown(context.Background()); srv.Close() }, nil
}

type result struct {
	rate   float64
	lat    []time.Duration
	errors int
}

func (r result) p(q int) time.Duration { return pct(r.lat, q) }

// pace calls fn n times at rate per second, each in its own goroutine (open loop: a slow
// call does not slow the sender), and returns the achieved rate and latencies.
func pace(rate, n int, fn func(int) error) result {
	var mu sync.Mutex
	var wg sync.WaitGroup
	r := result{}
	start := time.Now()
	tick := time.Second / time.Duration(rate)
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * tick)))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t0 := time.Now()
			err := fn(i)
			d := time.Since(t0)
			mu.Lock()
			if err != nil {
				r.errors++
			} else {
				r.lat = append(r.lat, d)
			}
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	r.rate = float64(n) / time.Since(start).Seconds()
	return r
}

// startTimes maps each load contact's external id to its run's start time.
func startTimes(ctx context.Context, cl client.Client, pool *pgxpool.Pool) (map[string]time.Time, error) {
	ids := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT id::text, external_id FROM contacts`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, ext string
		if err := rows.Scan(&id, &ext); err != nil {
			return nil, err
		}
		ids[id] = ext
	}
	out := map[string]time.Time{}
	var token []byte
	for {
		resp, err := cl.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "CairnJourney='load'", PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.Executions {
			contact := strings.TrimPrefix(e.Execution.WorkflowId, "journey:load:")
			if ext, ok := ids[contact]; ok {
				out[ext] = e.StartTime.AsTime()
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return out, nil
		}
	}
}

func pct(d []time.Duration, q int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*q/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func waitHTTP(url string) {
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postgresCPU sums the CPU time of the local cluster this program started: its postmaster
// and the backends it forked (other clusters on the machine are not counted).
func postgresCPU(postmaster int) time.Duration {
	var total time.Duration
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		fields := strings.Fields(s[end+2:])
		if len(fields) < 13 {
			continue
		}
		var pid, ppid int
		fmt.Sscan(s[:open-1], &pid)
		fmt.Sscan(fields[1], &ppid)
		if pid != postmaster && ppid != postmaster {
			continue
		}
		var ut, st int64
		fmt.Sscan(fields[11], &ut)
		fmt.Sscan(fields[12], &st)
		total += time.Duration(ut+st) * time.Second / 100 // clock ticks (USER_HZ = 100 on Linux)
	}
	return total
}
