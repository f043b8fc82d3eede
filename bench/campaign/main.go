// Command campaign fires a campaign at a large segment with Cairn running as production does
// (starter and worker processes against one Temporal and one PostgreSQL), kills one starter
// and one worker with SIGKILL mid-way and restarts them, and checks that every member started
// the journey exactly once. In the same run, before the campaign, this process makes raw
// Temporal starts of the same journey (SignalWithStart, as the dispatcher does, but straight
// from a client) for other contacts: the baseline rate.
//
//	go run ./bench/campaign                              # 100,000 members, 20,000 raw starts
//	go run ./bench/campaign -members 3000 -raw 2000      # a quick look
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

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
	flag.IntVar(&o.members, "members", 100_000, "contacts in the campaign's segment")
	flag.IntVar(&o.raw, "raw", 20_000, "raw Temporal starts for the baseline (other contacts)")
	flag.IntVar(&o.starters, "starters", 2, "starter processes")
	flag.IntVar(&o.workers, "workers", 2, "worker processes")
	flag.IntVar(&o.concurrency, "concurrency", 32, "dispatch concurrency of each starter; the raw starts use starters × this many callers")
	flag.IntVar(&o.rate, "rate", journey.MaxCampaignRate, "the campaign's rate (entries a second)")
	flag.BoolVar(&o.kill, "kill", true, "kill -9 one starter and one worker mid-way, then restart them")
	flag.Float64Var(&o.killAt, "kill-at", 0.4, "kill when this fraction of the members has started")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "campaign:", err)
		os.Exit(1)
	}
}

type options struct {
	members, raw, starters, workers, concurrency, rate int
	kill                                               bool
	killAt                                             float64
}

const (
	writeKey = "wk_campaign"
	adminKey = "ak_campaign"
	// Both journeys tag the contact and end: a start, an activity, the run's end.
	promoDoc = "id: promo\ntrigger: {manual: true}\nsteps: [{add_tag: promo}]"
	rawDoc   = "id: raw\ntrigger: {manual: true}\nsteps: [{add_tag: promo}]"
)

// proc is a cairn process this benchmark runs, kills and restarts.
type proc = measure.Proc

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "cairn-campaign-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "cairn")
	fmt.Println("building cairn …")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/cairn").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	pg, err := pglocal.StartTemp(ctx, map[string]string{"shared_buffers": "512MB", "max_connections": "200"})
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
	began := time.Now()
	if err := load(ctx, pool, o); err != nil {
		return err
	}
	fmt.Printf("loaded %d segment members, %d others (the raw starts' contacts and a tenth outside the segment) in %s\n",
		o.members, o.raw+o.members/10, time.Since(began).Round(time.Second))

	keys := codec.NewKeyEntry("campaign")
	common := []string{"DATABASE_URL=" + pg.URL, "TEMPORAL_ADDRESS=" + srv.GRPCAddress(), "CAIRN_LOG_LEVEL=warn", "CAIRN_CODEC_KEYS=" + keys}
	var starters, workers []*proc
	var urls []string
	for i := range o.starters {
		addr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
		urls = append(urls, "http://"+addr)
		starters = append(starters, &proc{Name: fmt.Sprintf("starter-%d", i), Args: []string{"starter"}, Log: filepath.Join(dir, fmt.Sprintf("starter-%d.log", i)),
			Env: append(common, "CAIRN_HTTP_ADDR="+addr, "CAIRN_WRITE_KEYS="+writeKey, "CAIRN_ADMIN_KEY="+adminKey, "CAIRN_CART_IDLE=0",
				fmt.Sprintf("CAIRN_DISPATCH_CONCURRENCY=%d", o.concurrency))})
	}
	for i := range o.workers {
		workers = append(workers, &proc{Name: fmt.Sprintf("worker-%d", i), Args: []string{"worker"}, Log: filepath.Join(dir, fmt.Sprintf("worker-%d.log", i)), Env: common})
	}
	for _, p := range append(append([]*proc{}, starters...), workers...) {
		if err := p.Start(bin); err != nil {
			return err
		}
		defer p.Stop(20 * time.Second)
	}
	for _, u := range urls {
		if err := waitHealthy(u); err != nil {
			return err
		}
	}
	ring, err := codec.ParseKeyRing(keys)
	if err != nil {
		return err
	}
	cd, err := codec.Config{Ring: ring}.Build(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	tc, err := cluster.Dial(ctx, cluster.Config{Address: srv.GRPCAddress(), Namespace: "default", Codec: cd}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer tc.Close()
	fmt.Printf("%d starters (dispatch concurrency %d each), %d workers, one embedded Temporal (SQLite), one PostgreSQL, 2 cores\n\n",
		o.starters, o.concurrency, o.workers)

	pgPID, err := pg.PID()
	if err != nil {
		return err
	}
	// usage is the CPU time spent so far by each part: this process (the embedded Temporal
	// server, and the raw starts' client), PostgreSQL, the starters, the workers.
	usage := func() [4]time.Duration {
		var u [4]time.Duration
		u[0], u[1] = measure.SelfCPU(), measure.TreeCPU(pgPID)
		for _, p := range starters {
			u[2] += p.CPU()
		}
		for _, p := range workers {
			u[3] += p.CPU()
		}
		return u
	}
	// The baseline: raw SignalWithStarts of the same journey, as many callers as the starters
	// dispatch contacts at once, then until those runs have completed.
	u0 := usage()
	raw, err := rawStarts(ctx, pool, tc, o)
	if err != nil {
		return err
	}
	u1 := usage()
	fmt.Printf("raw: %d starts in %s (%.0f/s); every run done and its events dispatched in %s (%.0f/s)\n", o.raw, raw.started.Round(time.Millisecond),
		float64(o.raw)/raw.started.Seconds(), raw.completed.Round(time.Millisecond), float64(o.raw)/raw.completed.Seconds())

	// The campaign: put, fire, watch; kill one starter and one worker mid-way.
	if err := put(urls[len(urls)-1], "/v1/campaigns/promo", fmt.Sprintf(`{"segment": "members", "journey": "promo", "schedule": {"every": "30d"}, "rate": %d}`, o.rate), 201); err != nil {
		return err
	}
	fired := time.Now()
	if err := put(urls[len(urls)-1], "/v1/campaigns/promo/fire", "", 202); err != nil {
		return err
	}
	var killedAt, restartedAt time.Time
	var startedAtKill int64
	var killWait sync.WaitGroup
	last := int64(0)
	lastChange := time.Now()
	for {
		// Cheap counts, once a second, so as not to load the system measured: runs enrolled
		// (about the runs started: a start whose starter was killed before it enrolled the run
		// is not among them), runs whose step is done (tags beyond the raw contacts'), members
		// entered.
		var started, completed, entered int64
		if err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM enrollments WHERE journey_id = 'promo'),
			(SELECT count(*) FROM contact_tags WHERE tag = 'promo') - $1,
			(SELECT count(*) FROM campaign_members WHERE event_id IS NOT NULL)`, o.raw).Scan(&started, &completed, &entered); err != nil {
			return err
		}
		if o.kill && killedAt.IsZero() && float64(started) >= o.killAt*float64(o.members) {
			killedAt, startedAtKill = time.Now(), started
			fmt.Printf("kill -9 %s and %s at %d/%d started (%d entered)\n", starters[0].Name, workers[0].Name, started, o.members, entered)
			starters[0].Kill9()
			workers[0].Kill9()
			killWait.Add(1)
			go func() {
				defer killWait.Done()
				time.Sleep(5 * time.Second)
				_ = starters[0].Start(bin)
				_ = workers[0].Start(bin)
				restartedAt = time.Now()
			}()
		}
		if completed == int64(o.members) {
			break
		}
		if started+completed != last {
			last, lastChange = started+completed, time.Now()
		}
		if time.Since(lastChange) > 5*time.Minute {
			return fmt.Errorf("stuck: %d entered, %d started, %d completed of %d", entered, started, completed, o.members)
		}
		time.Sleep(time.Second)
	}
	killWait.Wait()
	// Every run has recorded its end too, and every entry is dispatched.
	for {
		var ended, pending int64
		if err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM events WHERE name = 'journey_completed' AND properties ->> 'journey' = 'promo'),
			(SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL)`).Scan(&ended, &pending); err != nil {
			return err
		}
		if ended == int64(o.members) && pending == 0 {
			break
		}
		if time.Since(lastChange) > 5*time.Minute {
			return fmt.Errorf("stuck: %d of %d runs recorded their end, %d events pending", ended, o.members, pending)
		}
		time.Sleep(time.Second)
	}
	// A start is its entry's dispatch: the SignalWithStart happens just before it is marked.
	var lastStart time.Time
	var startedAtKill2 int64
	if err := pool.QueryRow(ctx, `SELECT max(dispatched_at), count(*) FILTER (WHERE dispatched_at <= $1)
		FROM events WHERE name = 'campaign_entered'`, nonZero(killedAt)).Scan(&lastStart, &startedAtKill2); err != nil {
		return err
	}
	if !killedAt.IsZero() {
		startedAtKill = startedAtKill2
	}
	allCompleted := time.Since(fired)
	u2 := usage()
	problems, err := verify(ctx, pool, tc, o)
	if err != nil {
		return err
	}
	startSpan := lastStart.Sub(fired)
	fmt.Println()
	fmt.Printf("| | raw Temporal starts | Cairn campaign |\n| --- | --- | --- |\n")
	fmt.Printf("| runs started | %d | %d (every member) |\n", o.raw, o.members)
	fmt.Printf("| start rate | %.0f/s | %.0f/s (fire → last start, %s, kill and restart included) |\n",
		float64(o.raw)/raw.started.Seconds(), float64(o.members)/startSpan.Seconds(), startSpan.Round(time.Second))
	if !killedAt.IsZero() {
		fmt.Printf("| start rate before the kill | | %.0f/s (%d in %s) |\n", float64(startedAtKill)/killedAt.Sub(fired).Seconds(), startedAtKill, killedAt.Sub(fired).Round(time.Second))
	}
	fmt.Printf("| runs done (step, end, their events dispatched) | %.0f/s | %.0f/s |\n", float64(o.raw)/raw.completed.Seconds(), float64(o.members)/allCompleted.Seconds())
	fmt.Printf("| raw rate / Cairn rate | | %.2f× |\n", (float64(o.raw)/raw.started.Seconds())/(float64(o.members)/startSpan.Seconds()))
	perRun := func(d time.Duration, n int) string {
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000/float64(n))
	}
	for i, part := range []string{"CPU per run: Temporal server (and the raw client)", "CPU per run: PostgreSQL", "CPU per run: starters", "CPU per run: workers"} {
		fmt.Printf("| %s | %s | %s |\n", part, perRun(u1[i]-u0[i], o.raw), perRun(u2[i]-u1[i], o.members))
	}
	if !killedAt.IsZero() {
		fmt.Printf("\nkilled %s and %s %s after the fire; restarted them %s later\n", starters[0].Name, workers[0].Name,
			killedAt.Sub(fired).Round(time.Second), restartedAt.Sub(killedAt).Round(time.Second))
	}
	if len(problems) > 0 {
		for _, p := range problems[:min(len(problems), 20)] {
			fmt.Println("PROBLEM:", p)
		}
		return fmt.Errorf("%d problems", len(problems))
	}
	fmt.Printf("every one of the %d members entered once and started the journey once; nobody outside the segment did\n", o.members)
	return nil
}

// load writes the contacts with COPY: the members (plan pro), a tenth more outside the segment
// (plan free), and the raw starts' contacts; then the segment and the two journeys.
func load(ctx context.Context, pool *pgxpool.Pool, o options) error {
	total := o.members + o.members/10 + o.raw
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"contacts"}, []string{"external_id", "traits"},
		pgx.CopyFromSlice(total, func(i int) ([]any, error) {
			switch {
			case i < o.members:
				return []any{fmt.Sprintf("m%d", i), map[string]any{"plan": "pro"}}, nil
			case i < o.members+o.members/10:
				return []any{fmt.Sprintf("f%d", i), map[string]any{"plan": "free"}}, nil
			}
			return []any{fmt.Sprintf("r%d", i), map[string]any{"plan": "raw"}}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy contacts: %w", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE contacts`); err != nil {
		return err
	}
	cond, err := journey.DecodeCondition([]byte("{field: plan, equals: pro}"))
	if err != nil {
		return err
	}
	if _, err := crm.PutSegment(ctx, pool, crm.Segment{ID: "members", Condition: *cond}); err != nil {
		return err
	}
	for _, doc := range []string{promoDoc, rawDoc} {
		j, err := journey.Decode([]byte(doc))
		if err != nil {
			return err
		}
		if _, _, err := crm.ApplyJourney(ctx, pool, j, doc); err != nil {
			return err
		}
	}
	return nil
}

type rawResult struct{ started, completed time.Duration }

// rawStarts SignalWithStarts the raw journey for the raw contacts from starters × concurrency
// callers, and waits until those runs have recorded their ends.
func rawStarts(ctx context.Context, pool *pgxpool.Pool, tc client.Client, o options) (rawResult, error) {
	var r rawResult
	v, err := crm.JourneyByID(ctx, pool, "raw", 0)
	if err != nil {
		return r, err
	}
	rows, err := pool.Query(ctx, `SELECT id FROM contacts WHERE traits ->> 'plan' = 'raw' ORDER BY id`)
	if err != nil {
		return r, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return r, err
	}
	work := make(chan int64)
	var failed atomic.Value
	var wg sync.WaitGroup
	began := time.Now()
	for range o.starters * o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				wf := contract.WorkflowID("raw", id)
				opts := client.StartWorkflowOptions{ID: wf, TaskQueue: contract.TaskQueue,
					WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
					TypedSearchAttributes: temporal.NewSearchAttributes(append(contract.ContactAttributes(fmt.Sprintf("r%d", id), nil),
						contract.AttrJourney.ValueSet("raw"), contract.AttrStep.ValueSet(v.Definition.Steps[0].ID),
						contract.AttrJourneyVersion.ValueSet(int64(v.Version)))...),
					StaticSummary: fmt.Sprintf("raw v%d for contact %d", v.Version, id)}
				in := contract.Input{Journey: v.Definition, Version: v.Version, ContactID: id, Revision: contract.Revision}
				signal := contract.Event{ID: -id, Name: journey.EventStartRequested, Properties: map[string]any{"journey": "raw"}, OccurredAt: time.Now()}
				for attempt := 0; ; attempt++ {
					callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := tc.SignalWithStartWorkflow(callCtx, wf, contract.SignalEvent, signal, opts, contract.WorkflowType, in)
					cancel()
					if err == nil {
						break
					}
					if attempt == 20 {
						failed.Store(err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	for _, id := range ids[:min(len(ids), o.raw)] {
		work <- id
	}
	close(work)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return r, err
	}
	r.started = time.Since(began)
	// Done as the campaign's runs are counted done: every step taken, every run's end recorded,
	// and every event those wrote dispatched (so the campaign starts on a quiet system).
	for {
		var done, ended, pending int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM contact_tags WHERE tag = 'promo'),
			(SELECT count(*) FROM events WHERE name = 'journey_completed' AND properties ->> 'journey' = 'raw'),
			(SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL)`).Scan(&done, &ended, &pending); err != nil {
			return r, err
		}
		if done >= o.raw && ended >= o.raw && pending == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	r.completed = time.Since(began)
	return r, nil
}

// verify checks exactly once, in the CRM and in Temporal.
func verify(ctx context.Context, pool *pgxpool.Pool, tc client.Client, o options) ([]string, error) {
	var problems []string
	var members, entered, distinctEntered, completed, distinctCompleted, tagged, outside, dead int64
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM campaign_members),
		(SELECT count(*) FROM events WHERE name = 'campaign_entered'),
		(SELECT count(DISTINCT contact_id) FROM events WHERE name = 'campaign_entered'),
		(SELECT count(*) FROM events WHERE name = 'journey_completed' AND properties ->> 'journey' = 'promo'),
		(SELECT count(DISTINCT contact_id) FROM events WHERE name = 'journey_completed' AND properties ->> 'journey' = 'promo'),
		(SELECT count(*) FROM events e JOIN contacts c ON c.id = e.contact_id WHERE e.name = 'tag_added' AND c.traits ->> 'plan' = 'pro'),
		(SELECT count(*) FROM campaign_members m JOIN contacts c ON c.id = m.contact_id WHERE c.traits ->> 'plan' <> 'pro'),
		(SELECT count(*) FROM events WHERE failed_at IS NOT NULL)`).
		Scan(&members, &entered, &distinctEntered, &completed, &distinctCompleted, &tagged, &outside, &dead)
	if err != nil {
		return nil, err
	}
	want := int64(o.members)
	for _, c := range []struct {
		what string
		got  int64
	}{{"members taken", members}, {"campaign_entered events", entered}, {"contacts entered", distinctEntered},
		{"runs completed", completed}, {"contacts whose run completed", distinctCompleted}, {"members tagged (tag_added)", tagged}} {
		if c.got != want {
			problems = append(problems, fmt.Sprintf("%s: %d, want %d", c.what, c.got, want))
		}
	}
	if outside > 0 {
		problems = append(problems, fmt.Sprintf("%d members outside the segment", outside))
	}
	if dead > 0 {
		problems = append(problems, fmt.Sprintf("%d events dead-lettered", dead))
	}
	// Temporal's own count of runs: a second start of any member would show here.
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: "CairnJourney='promo'"})
		if err != nil {
			return nil, err
		}
		if n.GetCount() == want {
			break
		}
		if time.Now().After(deadline) {
			problems = append(problems, fmt.Sprintf("Temporal has %d runs of promo, want %d", n.GetCount(), want))
			break
		}
		time.Sleep(time.Second)
	}
	return problems, nil
}

// nonZero is t, or the far future for the zero time.
func nonZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().Add(24 * time.Hour)
	}
	return t
}

func put(base, path, body string, want int) error {
	method := "PUT"
	if body == "" {
		method = "POST"
	}
	req, _ := http.NewRequest(method, base+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return nil
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
