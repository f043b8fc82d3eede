// Command load measures the starter: it posts Segment track events at a fixed rate and, in
// the same run, makes the same number of raw SignalWithStart calls at the same rate as a
// baseline, against one embedded Temporal server, a local PostgreSQL and a worker. With
// -codec both, the starter's phase runs twice, with the payload codec off and then on (a
// fresh worker and starter each time), to show what encryption costs. -starters 1,3 runs a
// phase with one starter and one with three sharing the events (posts go round-robin);
// -poison adds, for each, a phase where a journey whose entry condition cannot be evaluated
// is triggered by one event in twenty, to show that it does not slow the others.
//
//	go run ./bench/load -rate 200 -for 20s
//	go run ./bench/load -rate 200 -for 20s -codec both
//	go run ./bench/load -rate 200 -for 20s -starters 1,3 -poison
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/cairnhq/cairn/bench/measure"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/dev/embedded"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/worker"
)

func main() {
	rate := flag.Int("rate", 200, "events per second")
	dur := flag.Duration("for", 20*time.Second, "how long each phase sends")
	mode := flag.String("codec", "on", "the payload codec of the worker and starter: on, off, or both (one phase each)")
	startersFlag := flag.String("starters", "1", "starters per phase, comma-separated (a phase each): 1,3")
	poison := flag.Bool("poison", false, "also run each phase with a poisoned journey triggered by one event in twenty")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	var codecs []bool
	switch *mode {
	case "on":
		codecs = []bool{true}
	case "off":
		codecs = []bool{false}
	case "both":
		codecs = []bool{false, true}
	default:
		fmt.Fprintln(os.Stderr, "load: -codec is on, off or both")
		os.Exit(2)
	}
	var phases []phaseSetup
	for _, c := range codecs {
		for _, f := range strings.Split(*startersFlag, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fmt.Fprintln(os.Stderr, "load: -starters is a list of counts such as 1,3")
				os.Exit(2)
			}
			phases = append(phases, phaseSetup{codecOn: c, starters: n})
			if *poison {
				phases = append(phases, phaseSetup{codecOn: c, starters: n, poison: true})
			}
		}
	}
	if err := run(*rate, *dur, phases); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

const writeKey = "wk_load"

// The journey starts and then waits a day: what is measured is getting contacts in.
const doc = "id: load\ntrigger: {event: Signed Up}\nsteps: [{wait: 1d}, {add_tag: done}]"

func run(rate int, dur time.Duration, phases []phaseSetup) error {
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
	pgPID, err := pg.PID()
	if err != nil {
		return err
	}
	postgresCPU := func() time.Duration { return measure.TreeCPU(pgPID) }
	srv, err := embedded.Start(embedded.Options{DatabaseFile: filepath.Join(dir, "temporal.db"), Namespace: "default",
		SearchAttributes: contract.SearchAttributes, UIPort: -1})
	if err != nil {
		return err
	}
	defer srv.Stop()
	tc := cluster.Config{Address: srv.GRPCAddress(), Namespace: "default"}
	ring, err := codec.ParseKeyRing(codec.NewKeyEntry("load"))
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
	cl, err := client.Dial(client.Options{HostPort: srv.GRPCAddress(), Logger: sdklog.NewStructuredLogger(quiet)})
	if err != nil {
		return err
	}
	defer cl.Close()
	n := int(float64(rate) * dur.Seconds())
	fmt.Printf("%d events at %d/s per phase; embedded Temporal (SQLite, WAL), local PostgreSQL, one worker, starters as the phase says, one process\n\n", n, rate)

	// Baseline: what Temporal costs alone: SignalWithStart of the same workflow, same rate.
	cpu0, pg0 := measure.SelfCPU(), postgresCPU()
	base := pace(rate, n, func(i int) error {
		id := fmt.Sprintf("journey:raw:%d", i)
		_, err := cl.SignalWithStartWorkflow(ctx, id, contract.SignalEvent, contract.Event{Name: "Signed Up"},
			client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}, contract.WorkflowType,
			contract.Input{Journey: v.Definition, Version: v.Version, ContactID: int64(-i - 1)})
		return err
	})
	baseCPU, basePG := measure.SelfCPU()-cpu0, postgresCPU()-pg0

	// Cairn: the same events through the starter's HTTP API and dispatcher, once per codec
	// setting, each with a worker and a starter of its own.
	var cols []column
	for p, ps := range phases {
		ps.tc, ps.dbURL, ps.ring, ps.users, ps.postgresCPU = tc, pg.URL, ring, fmt.Sprintf("p%d-u", p), postgresCPU
		if ps.poison {
			// Stored directly, as a version accepted before documents were checked as they are
			// now: its entry condition cannot be evaluated, so each of its triggers fails.
			ps.poisonEvent = fmt.Sprintf("Poison %d", p)
			bad := journey.Condition{Field: &journey.FieldTest{Name: "plan", Op: "resembles", Value: "pro"}}
			pj := &journey.Journey{ID: fmt.Sprintf("poison-%d", p), Triggers: []journey.Trigger{{Kind: "event", Event: ps.poisonEvent}},
				Entry: &bad, Reentry: journey.Reentry{Mode: journey.ReentryAlways}, Steps: []journey.Step{{ID: "never", AddTag: "never"}}}
			if _, _, err := crm.ApplyJourney(ctx, pool, pj, pj.ID); err != nil {
				return err
			}
		}
		c, err := cairnPhase(ctx, ps, rate, n, pool, cl)
		if err != nil {
			return err
		}
		cols = append(cols, c)
	}
	head := fmt.Sprintf("%-34s %12s", "", "raw SWS")
	for _, c := range cols {
		head += fmt.Sprintf(" %12s", c.name)
	}
	fmt.Println(head)
	row := func(label, base string, f func(c column) string) {
		line := fmt.Sprintf("%-34s %12s", label, base)
		for _, c := range cols {
			line += fmt.Sprintf(" %12s", f(c))
		}
		fmt.Println(line)
	}
	row("accepted per second", fmt.Sprintf("%.1f", base.rate), func(c column) string { return fmt.Sprintf("%.1f", c.res.rate) })
	row("call p50 (SWS / HTTP accept)", measure.MS(base.p(50)), func(c column) string { return measure.MS(c.res.p(50)) })
	row("call p99 (SWS / HTTP accept)", measure.MS(base.p(99)), func(c column) string { return measure.MS(c.res.p(99)) })
	row("event → workflow started p50", measure.MS(base.p(50)), func(c column) string { return measure.MS(measure.Percentile(c.e2s, 50)) })
	row("event → workflow started p99", measure.MS(base.p(99)), func(c column) string { return measure.MS(measure.Percentile(c.e2s, 99)) })
	row("CPU per 1,000 events (this process)", measure.MS(baseCPU*1000/time.Duration(n)), func(c column) string { return measure.MS(c.cpu * 1000 / time.Duration(n)) })
	row("  + PostgreSQL CPU per 1,000", measure.MS(basePG*1000/time.Duration(n)), func(c column) string { return measure.MS(c.pg * 1000 / time.Duration(n)) })
	row("CPU ratio Cairn / raw (all)", "", func(c column) string { return fmt.Sprintf("%.2f×", float64(c.cpu+c.pg)/float64(baseCPU+basePG)) })
	if len(cols) == 2 && phases[0].codecOn != phases[1].codecOn {
		fmt.Printf("%-34s %12s %12s %11.2f×\n", "CPU ratio codec on / off (all)", "", "", float64(cols[1].cpu+cols[1].pg)/float64(cols[0].cpu+cols[0].pg))
	}
	row("errors", fmt.Sprint(base.errors), func(c column) string { return fmt.Sprint(c.res.errors) })
	row("runs started", "", func(c column) string { return fmt.Sprint(len(c.e2s)) })
	row("poison events dead-lettered", "", func(c column) string {
		if c.poisoned == 0 {
			return "-"
		}
		return fmt.Sprintf("%d/%d", c.dead, c.poisoned)
	})
	return nil
}

// phaseSetup is one Cairn phase: its worker's and starters' codec, how many starters, whether
// a poisoned journey is triggered, and its users' prefix.
type phaseSetup struct {
	tc          cluster.Config
	dbURL       string
	ring        *codec.KeyRing
	codecOn     bool
	starters    int
	poison      bool
	poisonEvent string
	users       string
	postgresCPU func() time.Duration
}

// column is one Cairn phase's figures.
type column struct {
	name    string
	res     result
	e2s     []time.Duration
	cpu, pg time.Duration
	// poisoned events sent, and how many of them were dead-lettered by the end of the phase.
	poisoned, dead int
}

// cairnPhase posts n events at rate through a fresh worker and starter, and waits until every
// one has started its run.
func cairnPhase(parent context.Context, ps phaseSetup, rate, n int, pool *pgxpool.Pool, cl client.Client) (column, error) {
	ctx, cancel := context.WithCancel(parent)
	quiet := slog.New(slog.DiscardHandler)
	cc := codec.Config{Ring: ps.ring, Off: !ps.codecOn}
	done := make(chan error, 1+ps.starters)
	go func() {
		done <- worker.Run(ctx, worker.Config{Temporal: ps.tc, DatabaseURL: ps.dbURL, Codec: cc, Logger: quiet})
	}()
	var addrs []string
	for range ps.starters {
		addr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
		addrs = append(addrs, addr)
		go func() {
			done <- starter.Run(ctx, starter.Config{Temporal: ps.tc, DatabaseURL: ps.dbURL, HTTPAddr: addr, Codec: cc,
				WriteKeys: []string{writeKey}, AdminKey: "ak", Logger: quiet, RatePerKey: 0})
		}()
	}
	defer func() {
		cancel()
		for range 1 + ps.starters {
			<-done
		}
	}()
	for _, addr := range addrs {
		measure.WaitHTTP("http://" + addr + "/healthz")
	}
	httpc := &http.Client{Timeout: 10 * time.Second}
	posted := make([]time.Time, n)
	cpu0, pg0 := measure.SelfCPU(), ps.postgresCPU()
	res := pace(rate, n, func(i int) error {
		addr := addrs[i%len(addrs)]
		body := fmt.Sprintf(`{"userId":"%s%d","event":"Signed Up","messageId":"%s%d"}`, ps.users, i, ps.users, i)
		if ps.poison && i%20 == 19 {
			// One event in twenty triggers the poisoned journey instead (its own contact).
			body = fmt.Sprintf(`{"userId":"%spoison-%d","event":%q,"messageId":"%spoison-%d"}`, ps.users, i, ps.poisonEvent, ps.users, i)
		}
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/track", strings.NewReader(body))
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
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL AND name = 'Signed Up'`).Scan(&left)
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := column{name: "codec on", res: res, cpu: measure.SelfCPU() - cpu0, pg: ps.postgresCPU() - pg0}
	if !ps.codecOn {
		c.name = "codec off"
	}
	if ps.starters > 1 || ps.poison {
		c.name = fmt.Sprintf("%d starter", ps.starters)
		if ps.starters > 1 {
			c.name += "s"
		}
		if ps.poison {
			c.name += "+poison"
		}
	}
	if ps.poison {
		c.poisoned = n / 20
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE name = $1 AND failed_at IS NOT NULL`, ps.poisonEvent).Scan(&c.dead)
	}
	started, err := startTimes(ctx, cl, pool)
	if err != nil {
		return c, err
	}
	for i, at := range posted {
		if s, ok := started[fmt.Sprintf("%s%d", ps.users, i)]; ok {
			c.e2s = append(c.e2s, s.Sub(at))
		}
	}
	return c, nil
}

type result struct {
	rate   float64
	lat    []time.Duration
	errors int
}

func (r result) p(q int) time.Duration { return measure.Percentile(r.lat, q) }

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
