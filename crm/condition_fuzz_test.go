package crm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

// FuzzConditionCompiles: the decoder never panics, and whatever condition it accepts runs on
// PostgreSQL without an SQL error (a condition the compiler refuses says so as ErrCondition).
func FuzzConditionCompiles(f *testing.F) {
	for _, seed := range []string{
		"{tag: vip}", "{field: plan, equals: pro}", "{field: age, between: [1, 2]}", "{field: d, within_last: 3d}",
		"{field: d, before: 2026-01-01}", "{score: {name: x, gte: 1}}", "{event: x, within: 1d, at_least: 2, where: {a: 1}}",
		"{not: {any: [{tag: a}, {list: b}]}}", `{visited: "/p*?%_"}`, "{purchased: SKU}", "{total_spent: {gt: 5}, within: 9d}",
		"{deal: {pipeline: p, stage: s, value: {lt: 3}}}", "{open_task: true}", "{in_journey: j}", "{created_within: 1w}",
		"{opened: true, since_entry: true}", "{field: flag, equals: true}", "{field: n, not_equals: 2.5}",
		"{event: x, between: [2026-01-01, 2026-02-01], at_most: 1}", "{purchased: true, since_entry: true, where: {a: 1}, exactly: 2}",
		"{abandoned_cart: true, within: 1d, at_least: 2}", "{viewed_not_purchased: true, within: 2d, product: P}",
		"{field: country, equals: PT}", "{field: city, gt: 3}", "{field: timezone, within_last: 1d}",
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	pool := pgtest.Pool(f)
	if err := crm.Migrate(ctx, pool); err != nil {
		f.Fatal(err)
	}
	s := pool
	id, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "fuzz", Traits: map[string]any{"plan": "pro", "age": 3, "d": "2026-01-01"},
		Name: "x", Properties: map[string]any{"a": 1}, Source: "test", OccurredAt: time.Now()})
	if err != nil {
		f.Fatal(err)
	}
	var contactID int64
	if err := pool.QueryRow(ctx, `SELECT contact_id FROM events WHERE id = $1`, id).Scan(&contactID); err != nil {
		f.Fatal(err)
	}
	env := crm.Env{Now: time.Now(), EnteredAt: time.Now().Add(-time.Hour)}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := journey.DecodeCondition([]byte(doc))
		if err != nil {
			return
		}
		if _, err := crm.Matches(ctx, s, contactID, *c, env); err != nil && !errors.Is(err, crm.ErrCondition) {
			t.Fatalf("accepted %q but the database refused it: %v", doc, err)
		}
		if _, err := crm.CountMatching(ctx, s, *c, env); err != nil && !errors.Is(err, crm.ErrCondition) {
			t.Fatalf("accepted %q but counting failed: %v", doc, err)
		}
	})
}
