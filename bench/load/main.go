// Command load measures the starter: it posts Segment track events at a fixed rate and, in
// the same run, makes the same number of raw SignalWithStart calls at the same rate as a
// baseline, against one embedded Temporal server, a local PostgreSQL and a worker. A raw
// phase runs before the first Cairn phase and after each one, and each Cairn phase's CPU is
// compared with the mean of the raw phases around it (the server's database grows with every
// phase, and later starts cost more). Every phase is measured until its runs have all taken
// their first workflow task and the process is idle again. With
// -codec both, the starter's phase runs twice, with the payload codec off and then on (a
// fresh worker and starter each time), to show what encryption costs. -starters 1,3 runs a
// phase with one starter and one with three sharing the events (posts go round-robin);
// -poison adds, for each, a phase where a journey whose entry condition cannot be evaluated
// is triggered by one event in twenty, to show that it does not slow the others.
//
//	go run ./bench/load -rate 200 -for 20s
//	go run ./bench/load -rate 200 -for 20s -codec both
//	go run ./bench/load -rate 200 -for 20s -starters 1,3 -poison
//	go run ./bench/load -rate 200 -for 20s -telemetry off,on,off,on
//
// -telemetry lists a phase per setting: on records the Temporal SDK's metrics, scrapes the
// starter's /metrics every second and exports every span over OTLP/HTTP to a receiver in this
// process that decodes and drops them (Cairn's own counters are kept either way). Each phase
// also prints sizing figures: the starter's own CPU per 1,000 events (the phase's less the raw
// phase's) and PostgreSQL's growth per contact.
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
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"

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
	"github.com/cairnhq/cairn/telemetry"
	"github.com/cairnhq/cairn/worker"
)

func main() {
	rate := flag.Int("rate", 200, "events per second")
	dur := flag.Duration("for", 20*time.Second, "how long each phase sends")
	mode := flag.String("codec", "on", "the payload codec of the worker and starter: on, off, or both (one phase each)")
	startersFlag := flag.String("starters", "1", "starters per phase, comma-separated (a phase each): 1,3")
	poison := flag.Bool("poison", false, "also run each phase with a poisoned journey triggered by one event in twenty")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	telemetryFlag := flag.String("telemetry", "off", "metrics and tracing per phase, comma-separated (a phase each): off, on")
	flag.BoolVar(&pgStat, "pgstat", false, "print each Cairn phase's ten costliest PostgreSQL statements (pg_stat_statements), to see where PostgreSQL's CPU goes")
	flag.BoolVar(&rawAttributes, "raw-attributes", false, "the raw baseline's starts carry the search attributes Cairn's do, to tell the server's cost of them from the dispatcher's")
	flag.Parse()
	var settings []bool
	for _, f := range strings.Split(*telemetryFlag, ",") {
		switch strings.TrimSpace(f) {
		case "off":
			settings = append(settings, false)
		case "on":
			settings = append(settings, true)
		default:
			fmt.Fprintln(os.Stderr, "load: -telemetry is a list of off and on, such as off,on")
			os.Exit(2)
		}
		if settings[len(settings)-1] && !telemetry.TracingEnabled() {
			stop, err := startTracing()
			if err != nil {
				fmt.Fprintln(os.Stderr, "load:", err)
				os.Exit(1)
			}
			defer stop()
		}
	}
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
	for _, tel := range settings {
		for _, c := range codecs {
			for _, f := range strings.Split(*startersFlag, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || n < 1 {
					fmt.Fprintln(os.Stderr, "load: -starters is a list of counts such as 1,3")
					os.Exit(2)
				}
				phases = append(phases, phaseSetup{codecOn: c, starters: n, telemetry: tel})
				if *poison {
					phases = append(phases, phaseSetup{codecOn: c, starters: n, poison: true, telemetry: tel})
				}
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
	var pgSettings map[string]string
	if pgStat {
		pgSettings = map[string]string{"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
	}
	pg, err := pglocal.StartTemp(ctx, pgSettings)
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
	if pgStat {
		if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
			return err
		}
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

	// Baseline: what Temporal costs alone: SignalWithStart of the same workflow at the same
	// rate, with a worker beside it taking the runs' first tasks as a Cairn phase's does. Each
	// side is measured until every run has taken its first task and the process is idle again
	// (the server records runs in its visibility store after answering), so each is charged
	// for all the work it set going and none of the other's. A raw phase runs before the
	// first Cairn phase and after each one: every phase adds thousands of runs to the server's
	// SQLite database, which makes later starts dearer, so each Cairn phase is compared with
	// the mean of the raw phases just before and just after it.
	var raws []rawColumn
	started := int64(0) // runs of the load journey begun so far, raw and Cairn
	rawRound := func() error {
		r, err := rawPhase(ctx, len(raws), rate, n, started, tc, pg.URL, ring, cl, v, postgresCPU)
		if err != nil {
			return err
		}
		raws, started = append(raws, r), runsBegun()
		return nil
	}
	if err := rawRound(); err != nil {
		return err
	}

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
		c, err := cairnPhase(ctx, ps, rate, n, started, pool, cl)
		if err != nil {
			return err
		}
		started = runsBegun()
		if err := rawRound(); err != nil {
			return err
		}
		c.before, c.after = raws[len(raws)-2], raws[len(raws)-1]
		cols = append(cols, c)
	}
	head := fmt.Sprintf("%-34s %12s", "", "raw SWS")
	for _, c := range cols {
		head += fmt.Sprintf(" %12s", c.name)
	}
	fmt.Println(head)
	// The raw column pools the raw phases: all their latencies, their mean rate and CPU.
	row := func(label, base string, f func(c column) string) {
		line := fmt.Sprintf("%-34s %12s", label, base)
		for _, c := range cols {
			line += fmt.Sprintf(" %12s", f(c))
		}
		fmt.Println(line)
	}
	var base result
	var baseCPU, basePG time.Duration
	for _, r := range raws {
		base.lat = append(base.lat, r.res.lat...)
		base.rate += r.res.rate / float64(len(raws))
		base.errors += r.res.errors
		baseCPU += r.cpu / time.Duration(len(raws))
		basePG += r.pg / time.Duration(len(raws))
	}
	per1000 := func(d time.Duration) string { return measure.MS(d * 1000 / time.Duration(n)) }
	row("accepted per second", fmt.Sprintf("%.1f", base.rate), func(c column) string { return fmt.Sprintf("%.1f", c.res.rate) })
	row("call p50 (SWS / HTTP accept)", measure.MS(base.p(50)), func(c column) string { return measure.MS(c.res.p(50)) })
	row("call p99 (SWS / HTTP accept)", measure.MS(base.p(99)), func(c column) string { return measure.MS(c.res.p(99)) })
	row("event → workflow started p50", measure.MS(base.p(50)), func(c column) string { return measure.MS(measure.Percentile(c.e2s, 50)) })
	row("event → workflow started p99", measure.MS(base.p(99)), func(c column) string { return measure.MS(measure.Percentile(c.e2s, 99)) })
	row("CPU per 1,000 events (this process)", per1000(baseCPU), func(c column) string { return per1000(c.cpu) })
	row("  + PostgreSQL CPU per 1,000", per1000(basePG), func(c column) string { return per1000(c.pg) })
	row("raw phases before / after, all CPU", "", func(c column) string {
		return fmt.Sprintf("%.0f/%.0f", float64(c.before.all().Milliseconds())*1000/float64(n), float64(c.after.all().Milliseconds())*1000/float64(n))
	})
	row("CPU ratio Cairn / raw (all)", "", func(c column) string { return fmt.Sprintf("%.2f×", float64(c.cpu+c.pg)/float64(c.baseline())) })
	row("starter CPU per 1,000 (derived)", "", func(c column) string { return per1000(c.cpu + c.pg - c.baseline()) })
	row("PostgreSQL growth per contact", "", func(c column) string { return fmt.Sprintf("%d B", c.dbGrowth/int64(n)) })
	var on, off []float64
	for i, c := range cols {
		if phases[i].telemetry {
			on = append(on, float64(c.cpu+c.pg))
		} else {
			off = append(off, float64(c.cpu+c.pg))
		}
	}
	if len(on) > 0 && len(off) > 0 {
		fmt.Printf("%-34s %12s %12.2f×\n", "CPU ratio telemetry on / off (all)", "", mean(on)/mean(off))
	}
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
	// telemetry: the SDK's metrics recorded and scraped, every span exported.
	telemetry bool
}

// baseline is the mean CPU of the raw phases around the phase.
func (c column) baseline() time.Duration { return (c.before.all() + c.after.all()) / 2 }

// rawColumn is one raw phase's figures.
type rawColumn struct {
	res     result
	cpu, pg time.Duration
}

// all is the phase's CPU, this process's and PostgreSQL's.
func (r rawColumn) all() time.Duration { return r.cpu + r.pg }

// rawPhase makes n raw SignalWithStart calls of the load journey's workflow at rate, with a
// worker beside it, and measures until every run (started before it: already begun) has
// taken its first task and the process has settled.
func rawPhase(ctx context.Context, k, rate, n int, before int64, tc cluster.Config, dbURL string, ring *codec.KeyRing, cl client.Client,
	v crm.JourneyVersion, postgresCPU func() time.Duration) (rawColumn, error) {
	wctx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() {
		workerDone <- worker.Run(wctx, worker.Config{Temporal: tc, DatabaseURL: dbURL, Codec: codec.Config{Ring: ring},
			Logger: slog.New(slog.DiscardHandler)})
	}()
	cpu0, pg0 := measure.SelfCPU(), postgresCPU()
	res := pace(rate, n, func(i int) error {
		id := fmt.Sprintf("journey:raw:%d:%d", k, i)
		opts := client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}
		if rawAttributes {
			opts.TypedSearchAttributes = temporal.NewSearchAttributes(append(contract.ContactAttributes(fmt.Sprintf("raw-%d-%d", k, i), nil),
				contract.AttrJourney.ValueSet(v.JourneyID), contract.AttrStep.ValueSet(v.Definition.Steps[0].ID),
				contract.AttrJourneyVersion.ValueSet(int64(v.Version)))...)
		}
		_, err := cl.SignalWithStartWorkflow(ctx, id, contract.SignalEvent, contract.Event{Name: "Signed Up"}, opts, contract.WorkflowType,
			contract.Input{Journey: v.Definition, Version: v.Version, ContactID: -int64(k*n + i + 1), Revision: contract.Revision})
		return err
	})
	if err := waitFirstTasks(before + int64(n-res.errors)); err != nil {
		return rawColumn{}, err
	}
	settle(postgresCPU, "raw")
	r := rawColumn{res: res, cpu: measure.SelfCPU() - cpu0, pg: postgresCPU() - pg0}
	stopWorker()
	return r, <-workerDone
}

// column is one Cairn phase's figures.
type column struct {
	// before and after are the raw phases around it.
	before, after rawColumn
	name          string
	res           result
	e2s           []time.Duration
	cpu, pg       time.Duration
	// poisoned events sent, and how many of them were dead-lettered by the end of the phase.
	poisoned, dead int
	// dbGrowth is how much the CRM database grew during the phase.
	dbGrowth int64
}

// cairnPhase posts n events at rate through a fresh worker and starter, and waits until every
// one has started its run.
func cairnPhase(parent context.Context, ps phaseSetup, rate, n int, before int64, pool *pgxpool.Pool, cl client.Client) (column, error) {
	ctx, cancel := context.WithCancel(parent)
	quiet := slog.New(slog.DiscardHandler)
	cc := codec.Config{Ring: ps.ring, Off: !ps.codecOn}
	// Clients, handlers and dispatchers made from here on record and trace as the phase says.
	telemetry.SetSDKMetrics(ps.telemetry)
	telemetry.SetTracing(ps.telemetry)
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
	if ps.telemetry {
		go scrape(ctx, "http://"+addrs[0]+"/metrics")
	}
	var dbBefore int64
	if err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbBefore); err != nil {
		return column{}, err
	}
	if pgStat {
		if _, err := pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
			return column{}, err
		}
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
	// Every run of the journey so far (the raw phases' and earlier phases' too) has taken its
	// first task.
	ordinary := n
	if ps.poison {
		ordinary -= n / 20
	}
	if err := waitFirstTasks(before + int64(ordinary)); err != nil {
		return column{}, err
	}
	settle(ps.postgresCPU, "Cairn")
	c := column{name: "codec on", res: res, cpu: measure.SelfCPU() - cpu0, pg: ps.postgresCPU() - pg0}
	if pgStat {
		if err := printStatements(ctx, pool, n); err != nil {
			return c, err
		}
	}
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		return c, err
	}
	var dbAfter int64
	if err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbAfter); err != nil {
		return c, err
	}
	c.dbGrowth = dbAfter - dbBefore
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
	if ps.telemetry {
		c.name += "+tel"
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

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// runsBegun is how many runs of the load journey have taken their first workflow task in
// this process's workers.
func runsBegun() int64 {
	m := &dto.Metric{}
	_ = telemetry.RunsStarted.WithLabelValues("load").Write(m)
	return int64(m.GetCounter().GetValue())
}

// waitFirstTasks waits until want runs of the load journey have begun in this process's
// workers (cairn_runs_started_total counts a run's first workflow task, not its replays).
func waitFirstTasks(want int64) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got := runsBegun()
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 5 minutes, %d of %d runs had taken their first task", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle waits until this process and PostgreSQL together use less than 15 % of a core for
// two seconds running (at most two minutes), so that what a phase set going is charged to it.
func settle(postgresCPU func() time.Duration, phase string) {
	if !measure.Settle(func() time.Duration { return measure.SelfCPU() + postgresCPU() }, 150*time.Millisecond, 2*time.Minute) {
		fmt.Printf("(the %s phase had not settled after two minutes: its figures end there)\n", phase)
	}
}

// pgStat prints each Cairn phase's costliest statements (-pgstat).
var pgStat bool

// printStatements prints the ten statements PostgreSQL spent most time executing since the
// phase began, per 1,000 events: calls, execution time, and the statement's first line.
func printStatements(ctx context.Context, pool *pgxpool.Pool, n int) error {
	rows, err := pool.Query(ctx, `SELECT calls, total_exec_time, regexp_replace(query, '\s+', ' ', 'g')
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var all float64
	if err := pool.QueryRow(ctx, `SELECT sum(total_exec_time), sum(calls) FROM pg_stat_statements`).Scan(&all, new(float64)); err != nil {
		return err
	}
	fmt.Printf("PostgreSQL statements of the phase, per 1,000 events (all: %.1f ms executing)\n", all*1000/float64(n))
	for rows.Next() {
		var calls int64
		var ms float64
		var q string
		if err := rows.Scan(&calls, &ms, &q); err != nil {
			return err
		}
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		fmt.Printf("  %7.0f calls %8.1f ms  %s\n", float64(calls)*1000/float64(n), ms*1000/float64(n), q)
	}
	fmt.Println()
	return rows.Err()
}

// rawAttributes gives the raw baseline's starts Cairn's search attributes (-raw-attributes).
var rawAttributes bool

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
