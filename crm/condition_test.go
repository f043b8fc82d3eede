package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// people builds a small population whose expected answers are written out by hand.
func people(t *testing.T, ctx context.Context, s *pgxpool.Pool, now time.Time) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	add := func(ext string, traits map[string]any, events ...crm.EventInput) {
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: ext, Traits: traits, Name: "identify", Source: "test", OccurredAt: now.Add(-400 * 24 * time.Hour)})
		require.NoError(t, err)
		c, err := crm.ContactByExternalID(ctx, s, ext)
		require.NoError(t, err)
		ids[ext] = c.ID
		for _, e := range events {
			e.ExternalID, e.Source = ext, "test"
			_, _, err := crm.RecordEvent(ctx, s, e)
			require.NoError(t, err)
		}
	}
	day := 24 * time.Hour
	add("ann", map[string]any{"plan": "pro", "age": 41, "city": "Lisbon", "vip": true, "renewal": now.Add(-3 * day).Format(time.RFC3339)},
		crm.EventInput{Name: "Order Completed", Properties: map[string]any{"currency": "EUR", "total": 120}, OccurredAt: now.Add(-2 * day)},
		crm.EventInput{Name: "Order Completed", Properties: map[string]any{"currency": "USD"}, OccurredAt: now.Add(-40 * day)},
		crm.EventInput{Name: "Email Opened", OccurredAt: now.Add(-1 * day)})
	add("bob", map[string]any{"plan": "free", "age": "29", "city": "Porto", "vip": false, "renewal": "not a date"},
		crm.EventInput{Name: "Order Completed", Properties: map[string]any{"currency": "EUR"}, OccurredAt: now.Add(-10 * day)})
	add("cyd", map[string]any{"plan": "", "age": "old"})
	add("dee", map[string]any{})
	_, err := crm.AddTag(ctx, s, crm.Action{Key: "k-ann-vip", ContactID: ids["ann"], At: time.Now()}, "vip")
	require.NoError(t, err)
	_, err = crm.AddTag(ctx, s, crm.Action{Key: "k-bob-lead", ContactID: ids["bob"], At: time.Now()}, "lead")
	require.NoError(t, err)
	require.NoError(t, crm.SetScore(ctx, s, ids["ann"], "", 70))
	require.NoError(t, crm.SetScore(ctx, s, ids["bob"], "", 20))
	require.NoError(t, crm.SetScore(ctx, s, ids["bob"], "engagement", 55))
	return ids
}

func TestConditionsMatchTheContactsTheyDescribe(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	ids := people(t, ctx, s, now)
	cases := []struct {
		cond string
		want []string
	}{
		{"{tag: vip}", []string{"ann"}},
		{"{not: {tag: vip}}", []string{"bob", "cyd", "dee"}},
		{"{field: plan, equals: pro}", []string{"ann"}},
		{"{field: plan, equals: PRO}", []string{"ann"}},
		{"{field: plan, not_equals: pro}", []string{"bob"}}, // cyd's plan is blank, dee has none
		{"{not: {field: plan, equals: pro}}", []string{"bob", "cyd", "dee"}},
		{"{not: {field: plan, not_equals: pro}}", []string{"ann", "cyd", "dee"}},
		{"{field: age, not_equals: 29}", []string{"ann"}}, // cyd's age is no number
		{"{field: city, contains: PORT}", []string{"bob"}},
		{"{field: city, starts_with: lis}", []string{"ann"}},
		{"{field: age, gt: 30}", []string{"ann"}},
		{"{field: age, lte: 29}", []string{"bob"}},
		{"{field: age, equals: 29}", []string{"bob"}},
		{"{field: age, between: [20, 45]}", []string{"ann", "bob"}},
		{"{not: {field: age, gt: 30}}", []string{"bob", "cyd", "dee"}},
		{"{field: vip, equals: true}", []string{"ann"}},
		{"{field: vip, equals: false}", []string{"bob"}},
		{"{field: plan, is_set: true}", []string{"ann", "bob"}},
		{"{field: plan, is_blank: true}", []string{"cyd", "dee"}},
		{"{field: renewal, within_last: 7d}", []string{"ann"}},
		{"{field: renewal, before: 2000-01-01}", []string{}},
		{"{score: {gte: 50}}", []string{"ann"}},
		{"{score: {lt: 50}}", []string{"bob", "cyd", "dee"}},
		{"{score: {name: engagement, between: [50, 60]}}", []string{"bob"}},
		{"{event: Order Completed}", []string{"ann", "bob"}},
		{"{event: Order Completed, within: 7d}", []string{"ann"}},
		{"{not: {event: Order Completed, within: 7d}}", []string{"bob", "cyd", "dee"}},
		{"{event: Order Completed, at_least: 2}", []string{"ann"}},
		{"{event: Order Completed, at_most: 1}", []string{"bob", "cyd", "dee"}},
		{"{event: Order Completed, exactly: 0}", []string{"cyd", "dee"}},
		{"{event: Order Completed, where: {currency: EUR}, within: 30d}", []string{"ann", "bob"}},
		{"{event: Order Completed, where: {currency: EUR, total: 120}}", []string{"ann"}},
		{"{all: [{tag: lead}, {event: Order Completed}]}", []string{"bob"}},
		{"{any: [{tag: vip}, {field: plan, equals: free}]}", []string{"ann", "bob"}},
		{"{all: [{event: Email Opened, within: 7d}, {not: {score: {lt: 60}}}]}", []string{"ann"}},
	}
	for _, tc := range cases {
		requireMembers(t, ctx, s, ids, now, tc.cond, tc.want)
	}
}

// requireMembers checks a condition both ways: contact by contact (Matches, the interpreter's
// question) and all at once (CountMatching, the segment's), against the expected names.
func requireMembers(t *testing.T, ctx context.Context, s *pgxpool.Pool, ids map[string]int64, now time.Time, doc string, want []string) {
	t.Helper()
	cond, err := journey.DecodeCondition([]byte(doc))
	require.NoError(t, err, doc)
	var got []string
	for name, id := range ids {
		ok, err := crm.Matches(ctx, s, id, *cond, crm.Env{Now: now})
		require.NoError(t, err, doc)
		if ok {
			got = append(got, name)
		}
	}
	require.ElementsMatch(t, want, got, doc)
	n, err := crm.CountMatching(ctx, s, *cond, crm.Env{Now: now})
	require.NoError(t, err, doc)
	require.EqualValues(t, len(want), n, "count of %s", doc)
}

func TestEventSinceEntryCountsOnlyEventsAfterTheContactEntered(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	ids := people(t, ctx, s, now)
	cond, err := journey.DecodeCondition([]byte("{event: Order Completed, since_entry: true}"))
	require.NoError(t, err)
	ok, err := crm.Matches(ctx, s, ids["ann"], *cond, crm.Env{Now: now, EnteredAt: now.Add(-3 * 24 * time.Hour)})
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = crm.Matches(ctx, s, ids["bob"], *cond, crm.Env{Now: now, EnteredAt: now.Add(-3 * 24 * time.Hour)})
	require.NoError(t, err)
	require.False(t, ok)

	_, err = crm.Matches(ctx, s, ids["ann"], *cond, crm.Env{Now: now})
	require.ErrorIs(t, err, crm.ErrCondition, "since_entry outside a journey is the condition's fault, not the database's")
}

func TestConditionOnUnknownContactIsNotFound(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, err := crm.Matches(ctx, s, 404, journey.Condition{Tag: "x"}, crm.Env{Now: time.Now()})
	require.ErrorIs(t, err, crm.ErrNotFound)
}
