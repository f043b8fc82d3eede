package starter_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/starter"
)

func TestSegmentsAreCheckedCountedAndListedPageByPage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "PUT", "/v1/segments/pro", `{"name": "Pro", "condition": {"all": [{"field": "plan", "equal": "pro"}]}}`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	probs := errorOf(t, r)["problems"].([]any)
	require.Equal(t, "condition.all[0].equal", probs[0].(map[string]any)["path"])
	require.Zero(t, f.count(t, "segments"))

	r = f.do(t, "PUT", "/v1/segments/pro", "name: Pro\ncondition: {field: plan, equals: pro}\n", bearer(adminKey))
	require.Equal(t, 201, r.Status)
	for i := 0; i < 5; i++ {
		plan := "pro"
		if i == 2 {
			plan = "free"
		}
		require.Equal(t, 200, f.do(t, "POST", "/v1/identify", fmt.Sprintf(`{"userId":"u%d","traits":{"plan":"%s"}}`, i, plan), basic(writeKey)).Status)
	}
	r = f.do(t, "GET", "/v1/segments/pro", "", bearer(adminKey))
	require.Equal(t, 200, r.Status)
	require.Equal(t, float64(4), r.Body["count"])

	var seen []string
	after := ""
	for page := 0; page < 5; page++ {
		r = f.do(t, "GET", "/v1/segments/pro/contacts?limit=3&after="+after, "", bearer(adminKey))
		require.Equal(t, 200, r.Status)
		for _, c := range r.Body["contacts"].([]any) {
			seen = append(seen, c.(map[string]any)["external_id"].(string))
		}
		next, ok := r.Body["next"].(string)
		if !ok {
			break
		}
		after = next
	}
	require.Equal(t, []string{"u0", "u1", "u3", "u4"}, seen)

	r = f.do(t, "GET", "/v1/contacts/u0", "", bearer(adminKey))
	require.Equal(t, []any{"pro"}, r.Body["segments"])
	require.Equal(t, 400, f.do(t, "GET", "/v1/segments/pro/contacts?limit=0", "", bearer(adminKey)).Status)
	require.Equal(t, 404, f.do(t, "GET", "/v1/segments/nope", "", bearer(adminKey)).Status)
}

func TestConditionsOnUndefinedFieldsOrWithTheWrongOperatorAreRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 200, f.do(t, "PUT", "/v1/fields/seats", `{"type": "number", "label": "Seats"}`, bearer(adminKey)).Status)
	require.Equal(t, 200, f.do(t, "PUT", "/v1/fields/renewal", `{"type": "date"}`, bearer(adminKey)).Status)
	require.Equal(t, 400, f.do(t, "PUT", "/v1/fields/x", `{"type": "money"}`, bearer(adminKey)).Status)

	r := f.do(t, "PUT", "/v1/journeys/j", `
id: j
trigger: {event: e}
entry: {all: [{field: seats, contains: "5"}, {field: colour, equals: red}]}
steps:
  - if: {field: seats, equals: many}
    then: [end]
  - {wait_until: {condition: {field: renewal, within_last: 3d}, timeout: 1d}}
`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	var paths []string
	for _, p := range errorOf(t, r)["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string)+": "+p.(map[string]any)["message"].(string))
	}
	require.Len(t, paths, 3, "%v", paths)
	require.Contains(t, paths[0], "entry.all[0].contains: seats is a number field")
	require.Contains(t, paths[1], `entry.all[1].field: "colour" is not a defined field`)
	require.Contains(t, paths[2], "steps[0].if.equals: seats is a number field: many is not a number")
	require.Zero(t, f.count(t, "journeys"))

	r = f.do(t, "PUT", "/v1/segments/s", `{"condition": {"field": "renewal", "gt": 3}}`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/s", `{"condition": {"all": [{"field": "renewal", "anniversary": true}, {"field": "email", "is_set": true}]}}`, bearer(adminKey)).Status)
}

func TestSegmentsPastTheLimitsOrUsingSinceEntryAreRefusedAtPut(t *testing.T) {
	t.Parallel()
	f := setup(t)
	problem := func(doc string) map[string]any {
		t.Helper()
		r := f.do(t, "PUT", "/v1/segments/s", doc, bearer(adminKey))
		require.Equal(t, 422, r.Status, "%v", r.Body)
		probs := errorOf(t, r)["problems"].([]any)
		require.Len(t, probs, 1, "%v", probs)
		return probs[0].(map[string]any)
	}
	// Thirty thousand tags, as a program would send them: too large a document to read.
	tags := make([]string, 30_000)
	for i := range tags {
		tags[i] = fmt.Sprintf(`{"tag": "t%d"}`, i)
	}
	p := problem(`{"condition": {"any": [` + strings.Join(tags, ", ") + `]}}`)
	require.Contains(t, p["message"], "at most 262144 (256 KiB) are allowed")
	// Written tightly enough to fit, too many to run.
	p = problem("condition:\n  any:\n" + strings.Repeat("  - tag: a\n", 23_000))
	require.Equal(t, "condition.any", p["path"])
	require.Equal(t, "has 23000 conditions: at most 1000 are allowed", p["message"])
	p = problem(`{"condition": ` + strings.Repeat(`{"not": `, 40) + `{"tag": "a"}` + strings.Repeat("}", 40) + "}")
	require.Equal(t, "condition"+strings.Repeat(".not", 32), p["path"])
	// Nested thousands deep, the body is refused before it is decoded at all.
	r := f.do(t, "PUT", "/v1/segments/s", `{"condition": `+strings.Repeat(`{"not": `, 5000)+`{"tag": "a"}`+strings.Repeat("}", 5000)+"}", bearer(adminKey))
	require.Equal(t, 400, r.Status, "%v", r.Body)
	require.Contains(t, errorOf(t, r)["message"], "nests deeper than 64 levels")
	// since_entry only has a meaning in a journey.
	p = problem(`{"condition": {"all": [{"tag": "a"}, {"event": "x", "since_entry": true}]}}`)
	require.Equal(t, "condition.all[1].since_entry", p["path"])
	require.Contains(t, p["message"], "only has a meaning in a journey")
	p = problem("condition: {any: [{opened: welcome, since_entry: true}, {tag: a}]}")
	require.Equal(t, "condition.any[0].since_entry", p["path"])
	// So does a keyed value: a segment has no trigger to read it from.
	p = problem(`{"condition": {"all": [{"tag": "a"}, {"event": "Order Completed", "where": {"cart_id": {"trigger": "cart_id"}}}]}}`)
	require.Equal(t, "condition.all[1].where.cart_id.trigger", p["path"])
	require.Contains(t, p["message"], "a segment has no trigger")
	require.Zero(t, f.count(t, "segments"))
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/s", "condition: {event: x, within: 30d}", bearer(adminKey)).Status)
}

// TestASegmentTooExpensiveToCountInTimeIsA503: past its time limit a count or a page of
// members is refused with a JSON error saying so, not a 500.
func TestASegmentTooExpensiveToCountInTimeIsA503(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/pro", "condition: {field: plan, equals: pro}", bearer(adminKey)).Status)
	api := &starter.API{DB: f.store, WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: discard()}
	srv := httptest.NewServer(starter.WithQueryTimeout(api.Handler(), 100*time.Millisecond))
	t.Cleanup(srv.Close)
	slow := &fixture{ctx: f.ctx, store: f.store, srv: srv}

	// A count that takes longer than the limit: contacts are locked.
	tx, err := f.store.Begin(f.ctx)
	require.NoError(t, err)
	defer tx.Rollback(f.ctx)
	_, err = tx.Exec(f.ctx, `LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	for _, path := range []string{"/v1/segments/pro", "/v1/segments/pro/contacts"} {
		r := slow.do(t, "GET", path, "", bearer(adminKey))
		require.Equal(t, 503, r.Status, path)
		e := errorOf(t, r)
		require.Equal(t, "query_timeout", e["code"], path)
		require.Contains(t, e["message"], "too expensive", path)
		require.Contains(t, e["message"], "100ms", path)
	}
	require.NoError(t, tx.Rollback(f.ctx))
	require.Equal(t, 200, slow.do(t, "GET", "/v1/segments/pro", "", bearer(adminKey)).Status)
}

// TestASegmentNearTheLimitsIsAnsweredOrRefusedInTime: a thousand tests of every kind over
// some contacts, under a short limit, get a count or a 503, never another error.
func TestASegmentNearTheLimitsIsAnsweredOrRefusedInTime(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for i := 0; i < 50; i++ {
		require.Equal(t, 200, f.do(t, "POST", "/v1/track", fmt.Sprintf(`{"userId":"u%d","event":"e%d","properties":{"k":%d},"context":{"traits":{"plan":"p%d","age":%d}}}`, i, i, i, i, i), basic(writeKey)).Status)
	}
	tests := make([]string, 1000)
	for i := range tests {
		tests[i] = []string{
			fmt.Sprintf("{event: e%d, within: 30d, where: {k: %d}, at_least: 1}", i, i),
			fmt.Sprintf("{field: plan, contains: p%d}", i),
			fmt.Sprintf("{field: age, between: [%d, %d]}", i, i+3),
			fmt.Sprintf("{all: [{tag: t%d}, {not: {visited: \"/p%d*\", within: 7d}}]}", i, i),
		}[i%4]
	}
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/big", "condition: {any: ["+strings.Join(tests, ", ")+"]}", bearer(adminKey)).Status)
	api := &starter.API{DB: f.store, WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: discard()}
	srv := httptest.NewServer(starter.WithQueryTimeout(api.Handler(), 50*time.Millisecond))
	t.Cleanup(srv.Close)
	slow := &fixture{ctx: f.ctx, store: f.store, srv: srv}
	for _, path := range []string{"/v1/segments/big", "/v1/segments/big/contacts"} {
		r := slow.do(t, "GET", path, "", bearer(adminKey))
		if r.Status != 200 {
			require.Equal(t, 503, r.Status, "%v", r.Body)
			require.Equal(t, "query_timeout", errorOf(t, r)["code"])
		}
	}
	r := f.do(t, "GET", "/v1/segments/big", "", bearer(adminKey))
	require.Equal(t, 200, r.Status, "%v", r.Body)
	require.Equal(t, float64(50), r.Body["count"])
}

// TestASegmentThatCannotBeAnsweredDoesNotBreakTheContactProfile: a segment stored before it
// would be refused (since_entry has no meaning outside a journey) fails when checked; the
// profile still answers, naming that segment instead of failing.
func TestASegmentThatCannotBeAnsweredDoesNotBreakTheContactProfile(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"plan":"pro"}}`, basic(writeKey)).Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/pros", `{"condition": {"field": "plan", "equals": "pro"}}`, bearer(adminKey)).Status)
	_, err := f.store.Exec(f.ctx, `INSERT INTO segments (id, name, condition) VALUES ('broken', 'old', '{"event": {"name": "x", "since_entry": true}}')`)
	require.NoError(t, err)
	r := f.do(t, "GET", "/v1/contacts/ada", "", bearer(adminKey))
	require.Equal(t, 200, r.Status, "%v", r.Body)
	require.Equal(t, []any{"pros"}, r.Body["segments"])
	unanswered := r.Body["segments_unanswered"].(map[string]any)
	require.Contains(t, unanswered, "broken")
}
