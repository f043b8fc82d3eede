// Command bounds times what the document and query bounds cost and save, beside hand-written
// SQL for the same questions, in one run: a contact's check in its own time-limited
// transaction, wide and large conditions, and defining and retyping fields. Uses DATABASE_URL
// (an empty database), or starts a throwaway local cluster.
//
//	go run ./bench/bounds -contacts 200000
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
	contacts := flag.Int("contacts", 200_000, "contacts to load")
	runs := flag.Int("runs", 10, "runs per question")
	flag.Parse()
	if err := run(*contacts, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bounds:", err)
		os.Exit(1)
	}
}

func run(n, runs int) error {
	ctx := context.Background()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		pg, err := pglocal.StartTemp(ctx, map[string]string{"shared_buffers": "512MB", "work_mem": "64MB"})
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
	r := rand.New(rand.NewPCG(1, 2))
	fmt.Printf("loading %d contacts with 3 of 1,000 tags each …\n", n)
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"contacts"}, []string{"external_id", "traits"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			return []any{fmt.Sprint("u", i), map[string]any{"plan": []string{"free", "pro", "team"}[r.IntN(3)], "seats": r.IntN(50)}}, nil
		})); err != nil {
		return err
	}
	var first int64
	if err := pool.QueryRow(ctx, `SELECT min(id) FROM contacts`).Scan(&first); err != nil {
		return err
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"contact_tags"}, []string{"contact_id", "tag"},
		pgx.CopyFromSlice(3*n, func(i int) ([]any, error) {
			return []any{first + int64(i/3), fmt.Sprintf("t%d", (i%3)*333+r.IntN(333))}, nil
		})); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE contacts, contact_tags`); err != nil {
		return err
	}
	env := crm.Env{Now: time.Now()}
	fmt.Printf("\n%-52s %16s %16s\n", "", "baseline", "Cairn")

	// A contact's check: Cairn's runs in a transaction with a statement timeout.
	tag, _ := journey.DecodeCondition([]byte("{tag: t7}"))
	var base, cairn []time.Duration
	for i := 0; i < runs*100; i++ {
		id := first + int64(r.IntN(n))
		t := time.Now()
		if _, err := crm.Matches(ctx, pool, id, *tag, env); err != nil {
			return err
		}
		cairn = append(cairn, time.Since(t))
		t = time.Now()
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contact_tags WHERE contact_id = $1 AND tag = 't7')`, id).Scan(&ok); err != nil {
			return err
		}
		base = append(base, time.Since(t))
	}
	fmt.Printf("%-52s %16s %16s\n", "one contact's tag check (time-limited transaction)", pp(base), pp(cairn))

	tags := make([]string, 1000)
	ins := make([]string, 1000)
	for i := range tags {
		tags[i] = fmt.Sprintf("{tag: t%d}", i)
		ins[i] = fmt.Sprintf("c.id IN (SELECT contact_id FROM contact_tags WHERE tag = 't%d')", i)
	}
	for _, q := range []struct {
		name, cond, naive string
		runs              int
	}{
		// Before: one subplan per tag, probed for every contact.
		{"count: any of 1,000 tags (one array test)", "{any: [" + strings.Join(tags, ", ") + "]}",
			"SELECT count(*) FROM contacts c WHERE " + strings.Join(ins, " OR "), 1},
		// Before: one semi-join per tag, all planned together.
		{"count: all of 100 tags (hashed subplans)", "{all: [" + strings.Join(tags[:100], ", ") + "]}",
			"SELECT count(*) FROM contacts c WHERE " + strings.Join(ins[:100], " AND "), 1},
		{"count: all of 48 tags (hashed subplans)", "{all: [" + strings.Join(tags[:48], ", ") + "]}",
			"SELECT count(*) FROM contacts c WHERE " + strings.Join(ins[:48], " AND "), 1},
		// Up to 16, PostgreSQL plans them as joins, as before.
		{"count: all of 16 tags (joins, as before)", "{all: [" + strings.Join(tags[:16], ", ") + "]}",
			"SELECT count(*) FROM contacts c WHERE " + strings.Join(ins[:16], " AND "), runs},
	} {
		cond, err := journey.DecodeCondition([]byte(q.cond))
		if err != nil {
			return err
		}
		var base, cairn []time.Duration
		var got, want int64
		for i := 0; i < q.runs; i++ {
			t := time.Now()
			if got, err = crm.CountMatching(ctx, pool, *cond, crm.Env{Now: time.Now(), Timeout: 10 * time.Minute}); err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			cairn = append(cairn, time.Since(t))
			t = time.Now()
			if err := pool.QueryRow(ctx, q.naive).Scan(&want); err != nil {
				return fmt.Errorf("%s baseline: %w", q.name, err)
			}
			base = append(base, time.Since(t))
		}
		check := ""
		if got != want {
			check = fmt.Sprintf("  (counts differ: %d vs %d)", want, got)
		}
		fmt.Printf("%-52s %16s %16s%s\n", q.name, pp(base), pp(cairn), check)
	}

	// Fields: the first definition of a type adds a column (a rewrite and a vacuum); a retype
	// to a type the field has had changes no table.
	for _, step := range []struct{ name, typ string }{
		{"define seats as text (adds its text column)", "text"},
		{"retype seats to number (adds its number column)", "number"},
		{"retype seats back to text (no column)", "text"},
		{"retype seats to date (no column)", "date"},
	} {
		t := time.Now()
		if err := crm.PutField(ctx, pool, crm.FieldDefinition{Name: "seats", Type: step.typ}); err != nil {
			return err
		}
		fmt.Printf("%-52s %16s %16s\n", step.name, "", time.Since(t).Round(time.Millisecond))
	}
	t := time.Now()
	for i := 0; i < 2000; i++ {
		if err := crm.PutField(ctx, pool, crm.FieldDefinition{Name: "seats", Type: []string{"text", "number"}[i%2]}); err != nil {
			return err
		}
	}
	fmt.Printf("%-52s %16s %16s\n", "2,000 retypes between text and number, each", "", (time.Since(t) / 2000).Round(10*time.Microsecond))
	return nil
}

func pp(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	p := func(q int) float64 { return float64(d[min(len(d)-1, len(d)*q/100)].Microseconds()) / 1000 }
	return fmt.Sprintf("%.2f / %.2f ms", p(50), p(95))
}
