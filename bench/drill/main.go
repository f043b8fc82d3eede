// Command drill runs Cairn as production does — several starter and worker processes against
// one Temporal and one PostgreSQL — kills one of each with SIGKILL mid-run, restarts them,
// and checks the event path's promises: every event dispatched exactly once, each run heard
// its contact's events in the order they were accepted and none twice, every run completed,
// no ledgered effect twice.
//
//	go run ./bench/drill                       # 3 starters, 2 workers, 1,000 contacts × 10 events
//	go run ./bench/drill -contacts 200 -events 5
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/cairnhq/cairn/bench/measure"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/dev/embedded"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal"
)

func main() {
	o := options{}
	flag.IntVar(&o.starters, "starters", 3, "starter processes")
	flag.IntVar(&o.workers, "workers", 2, "worker processes")
	flag.IntVar(&o.contacts, "contacts", 1000, "contacts")
	flag.IntVar(&o.events, "events", 10, "events per contact, in an order that matters")
	flag.IntVar(&o.senders, "senders", 40, "contacts sent concurrently")
	flag.BoolVar(&o.kill, "kill", true, "kill -9 one starter and one worker mid-run, then restart them")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
}

type options struct {
	starters, workers, contacts, events, senders int
	kill                                         bool
}

const (
	writeKey = "wk_drill"
	adminKey = "ak_drill"
)

// drillJourney holds each run until it has heard all of its contact's events and then a
// Release, which the drill sends only once every other event is dispatched: the run hears
// every event, in the order the dispatcher delivers them, and cannot finish before.
func drillJourney(events int) string {
	cond := "{event: Release}"
	for i := 1; i < events; i++ {
		cond += fmt.Sprintf(", {event: Seq %d}", i)
	}
	return "id: drill\ntrigger: {event: Seq 0}\nreentry: {mode: once}\nsteps:\n" +
		"  - id: hear-all\n    wait_until: {condition: {all: [" + cond + "]}, timeout: 1h}\n    then: [{add_tag: drilled}]\n"
}

// proc is a cairn process this benchmark runs, kills and restarts.
type proc = measure.Proc

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "cairn-drill-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "cairn")
	fmt.Println("building cairn …")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/cairn").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
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
	pool, err := pgxpool.New(ctx, pg.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return err
	}
	j, err := journey.Decode([]byte(drillJourney(o.events)))
	if err != nil {
		return err
	}
	if _, _, err := crm.ApplyJourney(ctx, pool, j, drillJourney(o.events)); err != nil {
		return err
	}
	keys := codec.NewKeyEntry("drill")
	common := []string{"DATABASE_URL=" + pg.URL, "TEMPORAL_ADDRESS=" + srv.GRPCAddress(), "CAIRN_LOG_LEVEL=warn", "CAIRN_CODEC_KEYS=" + keys}
	var starters, workers []*proc
	var urls []string
	for i := range o.starters {
		addr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
		urls = append(urls, "http://"+addr)
		starters = append(starters, &proc{Name: fmt.Sprintf("starter-%d", i), Args: []string{"starter"}, Log: filepath.Join(dir, fmt.Sprintf("starter-%d.log", i)),
			Env: append(common, "CAIRN_HTTP_ADDR="+addr, "CAIRN_WRITE_KEYS="+writeKey, "CAIRN_ADMIN_KEY="+adminKey,
				"CAIRN_CART_IDLE=0", "CAIRN_RATE_PER_KEY=0", "CAIRN_AUTH_FAILURES_PER_MINUTE=0")})
	}
	for i := range o.workers {
		workers = append(workers, &proc{Name: fmt.Sprintf("worker-%d", i), Args: []string{"worker"}, Log: filepath.Join(dir, fmt.Sprintf("worker-%d.log", i)), Env: common})
	}
	for _, p := range append(append([]*proc{}, starters...), workers...) {
		if err := p.Start(bin); err != nil {
			return err
		}
		defer p.Stop(15 * time.Second)
	}
	for _, u := range urls {
		if err := waitHealthy(u); err != nil {
			return err
		}
	}
	fmt.Printf("%d starters, %d workers, one embedded Temporal (SQLite), one PostgreSQL; %d contacts × %d events\n",
		o.starters, o.workers, o.contacts, o.events)
	time.Sleep(2 * time.Second) // the workers settle after their first polls
	rssIdle := workersRSS(workers)

	total := o.contacts * o.events
	var accepted, retried atomic.Int64
	killed := make(chan struct{})
	var killedAt, restartedAt time.Time
	if o.kill {
		go func() {
			for accepted.Load() < int64(total)*3/10 {
				time.Sleep(10 * time.Millisecond)
			}
			killedAt = time.Now()
			fmt.Printf("kill -9 %s and %s at %d/%d events accepted\n", starters[0].Name, workers[0].Name, accepted.Load(), total)
			starters[0].Kill9()
			workers[0].Kill9()
			time.Sleep(5 * time.Second)
			_ = starters[0].Start(bin)
			_ = workers[0].Start(bin)
			restartedAt = time.Now()
			fmt.Printf("restarted them at %d/%d events accepted\n", accepted.Load(), total)
			close(killed)
		}()
	} else {
		close(killed)
	}
	began := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	var sendErr atomic.Value
	for range o.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			for c := range work {
				for e := range o.events {
					body := fmt.Sprintf(`{"userId":"c%d","event":"Seq %d","messageId":"c%d-%d"}`, c, e, c, e)
					if err := send(hc, urls, c+e, body, &retried); err != nil {
						sendErr.Store(err)
						return
					}
					accepted.Add(1)
				}
			}
		}()
	}
	for c := range o.contacts {
		work <- c
	}
	close(work)
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return err
	}
	acceptedIn := time.Since(began)
	<-killed
	if err := waitDispatched(ctx, pool); err != nil {
		return err
	}
	dispatchedIn := time.Since(began)
	// Every run now waits for its Release: parked, each in its worker's sticky cache.
	time.Sleep(2 * time.Second)
	rssParked := workersRSS(workers)
	release := make(chan int)
	for range o.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			for c := range release {
				body := fmt.Sprintf(`{"userId":"c%d","event":"Release","messageId":"c%d-release"}`, c, c)
				if err := send(hc, urls, c, body, &retried); err != nil {
					sendErr.Store(err)
					return
				}
			}
		}()
	}
	for c := range o.contacts {
		release <- c
	}
	close(release)
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return err
	}

	// Wait until every event is dispatched and every run has completed.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var pending, failed, done int64
		if err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL),
			(SELECT count(*) FROM events WHERE failed_at IS NOT NULL),
			(SELECT count(*) FROM contact_tags WHERE tag = 'drilled')`).Scan(&pending, &failed, &done); err != nil {
			return err
		}
		if pending == 0 && done == int64(o.contacts) {
			break
		}
		if failed > 0 {
			return fmt.Errorf("%d events dead-lettered", failed)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after 10 minutes: %d events pending, %d of %d runs completed", pending, done, o.contacts)
		}
		time.Sleep(500 * time.Millisecond)
	}
	allDone := time.Since(began)
	problems, err := verify(ctx, pool, srv.GRPCAddress(), keys, o)
	if err != nil {
		return err
	}
	var lagP50, lagP99 float64
	var reattempted int64
	if err := pool.QueryRow(ctx, `SELECT
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - received_at)),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - received_at)),
		(SELECT count(*) FROM events WHERE attempts > 0)
		FROM events WHERE name LIKE 'Seq %'`).Scan(&lagP50, &lagP99, &reattempted); err != nil {
		return err
	}
	fmt.Printf("\n%-48s %12d\n", "events accepted (HTTP 200)", accepted.Load())
	fmt.Printf("%-48s %12d\n", "requests retried on another starter", retried.Load())
	fmt.Printf("%-48s %11.1fs\n", "all accepted in", acceptedIn.Seconds())
	fmt.Printf("%-48s %11.1fs\n", "all dispatched in", dispatchedIn.Seconds())
	fmt.Printf("%-48s %11.1fs\n", "released, and every run completed, in", allDone.Seconds())
	fmt.Printf("%-48s %10.0f ms\n", "accept → dispatched p50", lagP50*1000)
	fmt.Printf("%-48s %10.0f ms\n", "accept → dispatched p99", lagP99*1000)
	fmt.Printf("%-48s %12d\n", "events that needed another attempt", reattempted)
	fmt.Printf("%-48s %9.0f MiB\n", "workers' RSS, idle (all workers)", float64(rssIdle)/(1<<20))
	fmt.Printf("%-48s %9.0f MiB\n", fmt.Sprintf("workers' RSS, %d runs parked", o.contacts), float64(rssParked)/(1<<20))
	if per := float64(rssParked-rssIdle) / float64(o.contacts); per > 0 {
		fmt.Printf("%-48s %10.1f KiB\n", "  → worker memory per parked (cached) run", per/1024)
		fmt.Printf("%-48s %12.0f\n", "  → parked runs per GiB of worker memory", float64(1<<30)/per)
	}
	if o.kill {
		fmt.Printf("%-48s %11.1fs\n", "killed at (since start)", killedAt.Sub(began).Seconds())
		fmt.Printf("%-48s %11.1fs\n", "restarted at (since start)", restartedAt.Sub(began).Seconds())
	}
	if len(problems) > 0 {
		for _, p := range problems[:min(len(problems), 20)] {
			fmt.Println("PROBLEM:", p)
		}
		return fmt.Errorf("%d problems", len(problems))
	}
	fmt.Println("\nevery event dispatched once, every run heard its events in order and none twice, every run completed, no effect twice")
	return nil
}

// workersRSS sums the resident memory of the worker processes (VmRSS).
func workersRSS(workers []*proc) int64 {
	var total int64
	for _, w := range workers {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.Cmd.Process.Pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
				total += kb << 10
			}
		}
	}
	return total
}

// send posts the body to one starter, and on failure (a killed starter, a timeout) to the
// next: the messageId makes a repeat of an accepted event a no-op.
func send(hc *http.Client, urls []string, pick int, body string, retried *atomic.Int64) error {
	var last error
	for attempt := range 50 {
		u := urls[(pick+attempt)%len(urls)]
		req, _ := http.NewRequest("POST", u+"/v1/track", bytes.NewBufferString(body))
		req.SetBasicAuth(writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("%s: %s", u, resp.Status)
		}
		last = err
		retried.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("event not accepted after 50 tries: %w", last)
}

// verify checks each contact's run against the events PostgreSQL accepted for it.
func verify(ctx context.Context, pool *pgxpool.Pool, temporalAddr, keys string, o options) ([]string, error) {
	// The runs' payloads are read as the processes wrote them: through the codec.
	ring, err := codec.ParseKeyRing(keys)
	if err != nil {
		return nil, err
	}
	cd, err := codec.Config{Ring: ring}.Build(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	tc, err := cluster.Dial(ctx, cluster.Config{Address: temporalAddr, Namespace: "default", Codec: cd}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	var problems []string
	var mu sync.Mutex
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// Exactly once, in order: the events table.
	var notOnce int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT dedupe_key FROM events WHERE name LIKE 'Seq %'
		GROUP BY dedupe_key HAVING count(*) > 1) d`).Scan(&notOnce); err != nil {
		return nil, err
	}
	if notOnce > 0 {
		report("%d messages recorded more than once", notOnce)
	}
	var tagEvents int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE name = 'tag_added' AND properties ->> 'tag' = 'drilled'`).Scan(&tagEvents); err != nil {
		return nil, err
	}
	if tagEvents != int64(o.contacts) {
		report("drilled tagged %d times for %d contacts", tagEvents, o.contacts)
	}
	rows, err := pool.Query(ctx, `SELECT c.id, array_agg(e.id ORDER BY e.id) FROM events e JOIN contacts c ON c.id = e.contact_id
		WHERE e.name LIKE 'Seq %' OR e.name = 'Release' GROUP BY c.id ORDER BY c.id`)
	if err != nil {
		return nil, err
	}
	type want struct {
		contact int64
		ids     []int64
	}
	var wants []want
	for rows.Next() {
		var w want
		if err := rows.Scan(&w.contact, &w.ids); err != nil {
			return nil, err
		}
		wants = append(wants, w)
	}
	rows.Close()
	if len(wants) != o.contacts {
		report("%d contacts have events, want %d", len(wants), o.contacts)
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, w := range wants {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			wfID := contract.WorkflowID("drill", w.contact)
			var st contract.State
			if err := tc.GetWorkflow(ctx, wfID, "").Get(ctx, &st); err != nil {
				report("%s: %v", wfID, err)
				return
			}
			var heard []int64
			for _, ev := range st.Events {
				heard = append(heard, ev.ID)
			}
			switch {
			case st.Status != contract.StatusCompleted:
				report("%s ended %s", wfID, st.Status)
			case !slices.Equal(heard, w.ids):
				report("%s heard %v, want %v (accepted order, each once)", wfID, heard, w.ids)
			}
		}()
	}
	wg.Wait()
	// One run per contact: a second start of any would show here.
	count, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: "CairnJourney='drill'"})
	if err != nil {
		return nil, err
	}
	if count.GetCount() != int64(len(wants)) {
		report("%d runs of drill for %d contacts", count.GetCount(), len(wants))
	}
	sort.Strings(problems)
	return problems, nil
}

func waitHealthy(base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New(base + " did not become healthy")
}

// waitDispatched waits until no event is left to dispatch.
func waitDispatched(ctx context.Context, pool *pgxpool.Pool) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var pending, failed int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE failed_at IS NULL), count(*) FILTER (WHERE failed_at IS NOT NULL)
			FROM events WHERE dispatched_at IS NULL`).Scan(&pending, &failed); err != nil {
			return err
		}
		switch {
		case failed > 0:
			return fmt.Errorf("%d events dead-lettered", failed)
		case pending == 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%d events still pending after 10 minutes", pending)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
