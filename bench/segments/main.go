// Command segments loads a large CRM into PostgreSQL with COPY and times segment questions
// compiled from the condition language beside hand-written SQL for the same questions, in one
// run. Uses DATABASE_URL, or starts a throwaway local cluster with the given server settings.
//
//	go run ./bench/segments -contacts 1000000 -events 10000000
//	DATABASE_URL=… go run ./bench/segments -reuse   # time the questions on data loaded before
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal"
)

func main() {
	contacts := flag.Int("contacts", 1_000_000, "contacts to load")
	events := flag.Int("events", 10_000_000, "events to load")
	runs := flag.Int("runs", 20, "runs per question")
	reuse := flag.Bool("reuse", false, "skip loading when DATABASE_URL already holds the contacts")
	settings := flag.String("pg", "shared_buffers=2GB,work_mem=64MB", "server settings for the throwaway cluster (name=value,…)")
	flag.Parse()
	if err := run(*contacts, *events, *runs, *reuse, *settings); err != nil {
		fmt.Fprintln(os.Stderr, "segments:", err)
		os.Exit(1)
	}
}

func run(nContacts, nEvents, runs int, reuse bool, settings string) error {
	ctx := context.Background()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		pgSettings := map[string]string{}
		for _, kv := range strings.Split(settings, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				pgSettings[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		pg, err := pglocal.StartTemp(ctx, pgSettings)
		if err != nil {
			return err
		}
		defer pg.Stop()
		url = pg.URL
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return err
	}
	s := pool
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC()

	var firstID int64
	if err := pool.QueryRow(ctx, `SELECT COALESCE(min(id), 0) FROM contacts`).Scan(&firstID); err != nil {
		return err
	}
	reused := reuse && firstID != 0
	if reused {
		fmt.Println("reusing the loaded data")
		fmt.Printf("\n%-44s %14s %14s\n", "", "baseline", "Cairn")
	} else {
		// plan and age are defined fields, as an account would define them, so they get their
		// own columns (see crm.PutField).
		for _, f := range []crm.FieldDefinition{{Name: "plan", Type: "text"}, {Name: "age", Type: "number"}} {
			if err := crm.PutField(ctx, s, f); err != nil {
				return err
			}
		}
		if firstID, err = load(ctx, pool, r, now, nContacts, nEvents); err != nil {
			return err
		}
	}

	env := crm.Env{Now: now}
	type question struct {
		name, cond, naive string
		args              []any
	}
	qs := []question{
		{"tag segment count (p50 / p95)", "{tag: vip}",
			`SELECT count(*) FROM contact_tags WHERE tag = 'vip'`, nil},
		{"field + score segment", "{all: [{field: plan, equals: pro}, {score: {gte: 50}}]}",
			`SELECT count(*) FROM contacts c WHERE c.traits->>'plan' = 'pro' AND c.score >= 50`, nil},
		{"event count within 30 days (≥ 2 orders)", "{event: Order Completed, within: 30d, at_least: 2}",
			`SELECT count(*) FROM (SELECT contact_id FROM events WHERE name = 'Order Completed' AND occurred_at >= $1 GROUP BY contact_id HAVING count(*) >= 2) x`,
			[]any{now.Add(-30 * 24 * time.Hour)}},
		{"did not open within 7 days", "{not: {opened: true, within: 7d}}",
			`SELECT count(*) FROM contacts c WHERE c.id NOT IN (SELECT contact_id FROM events WHERE name = 'email_opened' AND occurred_at >= $1)`,
			[]any{now.Add(-7 * 24 * time.Hour)}},
		// Beyond the list: a field with an event window, so the planner must join.
		{"field + event window (not a target)", "{all: [{field: plan, equals: pro}, {event: Order Completed, within: 30d, at_least: 2}]}",
			`SELECT count(*) FROM contacts c WHERE c.traits->>'plan' = 'pro' AND c.id IN (SELECT contact_id FROM events WHERE name = 'Order Completed' AND occurred_at >= $1 GROUP BY contact_id HAVING count(*) >= 2)`,
			[]any{now.Add(-30 * 24 * time.Hour)}},
	}
	for _, q := range qs {
		cond, err := journey.DecodeCondition([]byte(q.cond))
		if err != nil {
			return err
		}
		var cairn, naive []time.Duration
		var got, want int64
		for i := 0; i < runs; i++ {
			t := time.Now()
			if got, err = crm.CountMatching(ctx, s, *cond, env); err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			cairn = append(cairn, time.Since(t))
			t = time.Now()
			if err := pool.QueryRow(ctx, q.naive, q.args...).Scan(&want); err != nil {
				return fmt.Errorf("%s baseline: %w", q.name, err)
			}
			naive = append(naive, time.Since(t))
		}
		check := ""
		if got != want {
			check = fmt.Sprintf("  (counts differ: %d vs %d)", want, got)
		}
		fmt.Printf("%-44s %14s %14s%s\n", q.name, pp(naive), pp(cairn), check)
	}
	// Single-contact check, the interpreter's question.
	cond, _ := journey.DecodeCondition([]byte("{all: [{tag: vip}, {event: Order Completed, within: 30d}, {not: {opened: true, within: 7d}}]}"))
	var cairn, naive []time.Duration
	for i := 0; i < runs*10; i++ {
		id := firstID + int64(r.IntN(nContacts))
		t := time.Now()
		if _, err := crm.Matches(ctx, s, id, *cond, env); err != nil {
			return err
		}
		cairn = append(cairn, time.Since(t))
		t = time.Now()
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contact_tags WHERE contact_id = $1 AND tag = 'vip')
			AND EXISTS (SELECT 1 FROM events WHERE contact_id = $1 AND name = 'Order Completed' AND occurred_at >= $2)
			AND NOT EXISTS (SELECT 1 FROM events WHERE contact_id = $1 AND name = 'email_opened' AND occurred_at >= $3)`,
			id, now.Add(-30*24*time.Hour), now.Add(-7*24*time.Hour)).Scan(&ok); err != nil {
			return err
		}
		naive = append(naive, time.Since(t))
	}
	fmt.Printf("%-44s %14s %14s\n", "single-contact check (3 conditions)", pp(naive), pp(cairn))

	// Defining a field once contacts exist rewrites the table (and so its visibility map, which
	// index-only scans need until the next vacuum): time it last, on a fresh load only.
	if reused {
		return nil
	}
	t := time.Now()
	if err := crm.PutField(ctx, s, crm.FieldDefinition{Name: "company_size", Type: "number"}); err != nil {
		return err
	}
	fmt.Printf("%-44s %14s %14s\n", "define a number field on the loaded contacts", "", time.Since(t).Round(10*time.Millisecond))
	return nil
}

func pp(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	p := func(q int) float64 { return float64(d[min(len(d)-1, len(d)*q/100)].Microseconds()) / 1000 }
	return fmt.Sprintf("%.1f / %.1f ms", p(50), p(95))
}

// load copies the population in and prints the load figures; it returns the first contact id.
func load(ctx context.Context, pool *pgxpool.Pool, r *rand.Rand, now time.Time, nContacts, nEvents int) (int64, error) {
	fmt.Printf("loading %d contacts, %d events (COPY) …\n", nContacts, nEvents)
	t0 := time.Now()
	loadStart := t0
	plans := []string{"free", "pro", "team"}
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"contacts"}, []string{"external_id", "email", "traits", "scores", "created_at"},
		pgx.CopyFromSlice(nContacts, func(i int) ([]any, error) {
			traits := map[string]any{"plan": plans[r.IntN(3)], "age": 18 + r.IntN(60)}
			scores := map[string]any{"": r.IntN(100)}
			return []any{fmt.Sprintf("u%d", i), fmt.Sprintf("u%d@example.com", i), traits, scores, now.Add(-time.Duration(r.IntN(700*24)) * time.Hour)}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy contacts: %w", err)
	}
	var firstID int64
	if err := pool.QueryRow(ctx, `SELECT min(id) FROM contacts`).Scan(&firstID); err != nil {
		return 0, err
	}
	contactRate := float64(n) / time.Since(t0).Seconds()
	t0 = time.Now()
	var tagRows int64
	if tagRows, err = pool.CopyFrom(ctx, pgx.Identifier{"contact_tags"}, []string{"contact_id", "tag"},
		pgx.CopyFromSlice(nContacts/5, func(i int) ([]any, error) {
			return []any{firstID + int64(i*5+r.IntN(5)), []string{"vip", "lead", "customer"}[i%3]}, nil
		})); err != nil {
		return 0, fmt.Errorf("copy tags: %w", err)
	}
	names := []string{"Order Completed", "Page Viewed", "email_opened", "email_clicked", "Product Viewed"}
	eventRows, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"contact_id", "name", "properties", "source", "occurred_at", "dispatched_at"},
		pgx.CopyFromSlice(nEvents, func(i int) ([]any, error) {
			at := now.Add(-time.Duration(r.IntN(90*24*60)) * time.Minute)
			return []any{firstID + int64(r.IntN(nContacts)), names[r.IntN(len(names))], map[string]any{"currency": "EUR"}, "bench", at, at}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy events: %w", err)
	}
	loadRate := float64(tagRows+eventRows) / time.Since(t0).Seconds()
	allRate := float64(n+tagRows+eventRows) / time.Since(loadStart).Seconds()
	// An append-only table is vacuumed by autovacuum's insert threshold, which marks its pages
	// all-visible so that index-only scans skip the table; do it now rather than wait for it.
	// A vacuum that runs while another transaction (autovacuum's own ANALYZE) holds an older
	// snapshot cannot mark the newest pages: repeat until nearly all are marked.
	for try := 0; ; try++ {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
			return 0, err
		}
		var visible float64
		if err := pool.QueryRow(ctx, `SELECT relallvisible::float8 / greatest(relpages, 1) FROM pg_class WHERE oid = 'events'::regclass`).Scan(&visible); err != nil {
			return 0, err
		}
		if visible > 0.99 || try == 5 {
			break
		}
		time.Sleep(2 * time.Second)
	}

	// Baseline load: one INSERT per row, as an ORM would, for a sample.
	const sample = 20000
	t0 = time.Now()
	for i := 0; i < sample; i++ {
		if _, err := pool.Exec(ctx, `INSERT INTO events (contact_id, name, properties, source, occurred_at, dispatched_at) VALUES ($1, $2, $3, 'bench', $4, $4)`,
			firstID+int64(r.IntN(nContacts)), names[r.IntN(len(names))], map[string]any{"currency": "EUR"}, now.Add(-time.Hour)); err != nil {
			return 0, err
		}
	}
	rowRate := float64(sample) / time.Since(t0).Seconds()
	fmt.Printf("\n%-44s %14s %14s\n", "", "baseline", "Cairn")
	fmt.Printf("%-44s %14s %14s\n", "load rows/s (row INSERTs vs COPY)", fmt.Sprintf("%.0f", rowRate), fmt.Sprintf("%.0f", allRate))
	fmt.Printf("%-44s %14s %14.0f\n", "  contacts rows/s", "", contactRate)
	fmt.Printf("%-44s %14s %14.0f\n", "  tags+events rows/s", "", loadRate)

	return firstID, nil
}
