// Command sqlite measures the embedded Temporal server on a SQLite file with the stock
// dev-server settings (one connection, no WAL, default dynamic config) and with Cairn's
// (WAL with synchronous=normal, raised shard IO concurrency and cache), in one run, side by
// side. Each workflow has the shape of a short journey: an action, an optional wait, an action.
//
//	go run ./bench/sqlite -n 600 -c 64 -wait 0
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"log/slog"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/dev/embedded"
)

func main() {
	n := flag.Int("n", 600, "workflows per mode")
	c := flag.Int("c", 64, "concurrent starters")
	flag.IntVar(&conns, "conns", embedded.DefaultSQLiteConns, "SQLite connections in cairn mode")
	flag.DurationVar(&pause, "wait", 0, "timer between the two activities (0: none; the server fires timers on whole seconds)")
	flag.Parse()
	fmt.Printf("embedded Temporal on a SQLite file: %d workflows (2 activities, wait %s), %d concurrent starters\n\n", *n, pause, *c)
	fmt.Printf("%-28s %10s %10s %10s %10s\n", "mode", "wf/s", "p50", "p95", "total")
	for _, m := range []struct {
		name   string
		legacy bool
	}{{"stock (baseline)", true}, {"cairn (WAL, dyncfg)", false}} {
		r, err := run(m.legacy, *n, *c)
		if err != nil {
			fmt.Fprintln(os.Stderr, m.name+":", err)
			os.Exit(1)
		}
		fmt.Printf("%-28s %10.1f %10s %10s %10s\n", m.name, r.rate, r.p50.Round(time.Millisecond), r.p95.Round(time.Millisecond), r.total.Round(time.Millisecond))
	}
}

type result struct {
	rate          float64
	p50, p95, all time.Duration
	total         time.Duration
}

var (
	pause time.Duration
	conns int
)

func noop(context.Context, int) (int, error) { return 0, nil }

// flow has the shape of a short journey: an action, a wait, an action.
func flow(ctx workflow.Context, i int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	if err := workflow.ExecuteActivity(ctx, noop, i).Get(ctx, nil); err != nil {
		return err
	}
	if pause > 0 {
		if err := workflow.Sleep(ctx, pause); err != nil {
			return err
		}
	}
	return workflow.ExecuteActivity(ctx, noop, i).Get(ctx, nil)
}

func run(legacy bool, n, conc int) (result, error) {
	dir, err := os.MkdirTemp("", "cairn-bench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Options{
		DatabaseFile: filepath.Join(dir, "temporal.db"), Namespace: "default",
		SearchAttributes: contract.SearchAttributes, UIPort: -1, LegacySQLite: legacy, SQLiteConns: conns,
	})
	if err != nil {
		return result{}, err
	}
	defer srv.Stop()
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	cl, err := client.Dial(client.Options{HostPort: srv.GRPCAddress(), Logger: quiet})
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	w := worker.New(cl, "bench", worker.Options{})
	w.RegisterWorkflow(flow)
	w.RegisterActivity(noop)
	if err := w.Start(); err != nil {
		return result{}, err
	}
	defer w.Stop()

	ctx := context.Background()
	lat := make([]time.Duration, n)
	jobs := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t0 := time.Now()
				run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-%d", i), TaskQueue: "bench"}, flow, i)
				if err == nil {
					err = run.Get(ctx, nil)
				}
				if err != nil {
					errs <- err
					continue
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	total := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{rate: float64(n) / total.Seconds(), p50: lat[n/2], p95: lat[n*95/100], total: total}, nil
}
