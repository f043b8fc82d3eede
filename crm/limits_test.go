package crm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// leafKinds writes one test of every kind, each with every option it takes (so with as many
// SQL parameters as it can have), varied by i so that no two leaves share their values.
var leafKinds = []func(i int) string{
	func(i int) string { return fmt.Sprintf("{tag: t%d}", i) },
	func(i int) string { return fmt.Sprintf("{list: l%d}", i) },
	func(i int) string { return fmt.Sprintf("{field: plan, equals: P%d}", i) },
	func(i int) string { return fmt.Sprintf("{field: plan, not_equals: p%d}", i) },
	func(i int) string {
		return fmt.Sprintf("{field: note, equals: %q}", strings.Repeat("n", 600)+fmt.Sprint(i))
	},
	func(i int) string { return fmt.Sprintf("{field: age, between: [%d, %d]}", i, i+10) },
	func(i int) string { return fmt.Sprintf("{field: age, gte: %d}", i) },
	func(i int) string { return fmt.Sprintf("{field: city, contains: c%d}", i) },
	func(i int) string { return fmt.Sprintf("{field: country, equals: C%d}", i) },
	func(i int) string { return fmt.Sprintf("{field: vip, not_equals: %v}", i%2 == 0) },
	func(i int) string { return fmt.Sprintf("{field: renewal, within_last: %dd}", i+1) },
	func(i int) string { return "{field: birthday, anniversary: true}" },
	func(i int) string { return "{field: renewal, is_set: true}" },
	func(i int) string { return fmt.Sprintf("{score: {name: s%d, gt: 1, gte: 2, lt: 90, lte: 80}}", i) },
	func(i int) string {
		return fmt.Sprintf("{event: e%d, within: %dd, between: [2020-01-01, 2030-01-01], since_entry: true, where: {k: %d}, at_least: 2}", i, i+1, i)
	},
	func(i int) string {
		return fmt.Sprintf(`{visited: "/p%d*", within: 3d, between: [2020-01-01, 2030-01-01], since_entry: true, where: {a: %d}, at_most: 3}`, i, i)
	},
	func(i int) string {
		return fmt.Sprintf("{purchased: S%d, within: 3d, between: [2020-01-01, 2030-01-01], since_entry: true, where: {c: %d}, exactly: 1}", i, i)
	},
	func(i int) string {
		return fmt.Sprintf("{abandoned_cart: true, within: %dd, where: {v: %d}, at_least: 1}", i+1, i)
	},
	func(i int) string { return fmt.Sprintf("{opened: tpl%d, within: 7d}", i) },
	func(i int) string { return fmt.Sprintf("{clicked: true, where: {link: l%d}}", i) },
	func(i int) string { return fmt.Sprintf("{total_spent: {gt: %d, lt: 1000}, within: 90d}", i) },
	func(i int) string { return fmt.Sprintf("{viewed_not_purchased: true, within: 2d, product: P%d}", i) },
	func(i int) string {
		return fmt.Sprintf("{deal: {pipeline: p%d, stage_at_least: s, value: {gt: 1, gte: 2, lt: 9, lte: 8}}}", i)
	},
	func(i int) string { return fmt.Sprintf("{deal: {pipeline: p%d, stage: s}}", i) },
	func(i int) string { return "{open_task: true}" },
	func(i int) string { return fmt.Sprintf("{in_journey: j%d}", i) },
	func(i int) string { return fmt.Sprintf("{completed_journey: j%d}", i) },
	func(i int) string { return fmt.Sprintf("{goal_met: {journey: j%d, goal: g}}", i) },
	func(i int) string { return fmt.Sprintf("{created_within: %dd}", i+1) },
}

func leaf(i int) string { return leafKinds[i%len(leafKinds)](i) }

// leaves is n leaves from i on, comma-separated.
func leaves(i, n int) string {
	parts := make([]string, n)
	for k := range parts {
		parts[k] = leaf(i + k)
	}
	return strings.Join(parts, ", ")
}

// atTheLimits are conditions exactly at the document limits: as deep, as wide and as large
// as a document may hold, of every kind of test.
func atTheLimits() map[string]string {
	deep := leaf(14) // the event test with the most parameters
	for d := journey.MaxConditionDepth - 1; d > 0; d-- {
		switch d % 3 {
		case 0:
			deep = "{not: " + deep + "}"
		case 1:
			deep = fmt.Sprintf("{all: [%s, %s]}", leaf(d), deep)
		default:
			deep = fmt.Sprintf("{any: [%s, %s]}", deep, leaf(d+7))
		}
	}
	groups := func(op, inner string) string {
		// 1 + 999 × (1 + 4) + (1 + 3) = 5,000 conditions: a test of each kind in turn, and
		// tags, which are short (tests of the longest kinds would not fit in 256 KiB).
		parts := make([]string, 0, 1000)
		for g := 0; g < 999; g++ {
			parts = append(parts, fmt.Sprintf("{%s: [%s, {tag: a%d}, {tag: b%d}, {tag: c%d}]}", inner, leaf(g), g, g, g))
		}
		parts = append(parts, fmt.Sprintf("{%s: [%s]}", inner, leaves(4000, 3)))
		return fmt.Sprintf("{%s: [%s]}", op, strings.Join(parts, ", "))
	}
	// As many of the tests with the most parameters as 256 KiB hold, in groups of ten.
	var heavy []string
	size := 0
	for i := 0; size < journey.MaxDocumentBytes-1000; i += 10 {
		var group []string
		for k := i; k < i+10; k++ {
			group = append(group, leafKinds[14+k%3](k))
		}
		g := "{all: [" + strings.Join(group, ", ") + "]}"
		heavy, size = append(heavy, g), size+len(g)+2
	}
	heavy = heavy[:len(heavy)-1]
	tags := make([]string, journey.MaxListItems)
	for i := range tags {
		tags[i] = fmt.Sprintf("{tag: t%d}", i)
	}
	return map[string]string{
		"deepest":                 deep,
		"widest any":              "{any: [" + leaves(0, journey.MaxListItems) + "]}",
		"widest all":              "{all: [" + leaves(0, journey.MaxListItems) + "]}",
		"most conditions, any":    groups("any", "all"),
		"most conditions, all":    groups("all", "any"),
		"an any of 1,000 tags":    "{any: [" + strings.Join(tags, ", ") + "]}",
		"not an all of 1000 tags": "{not: {all: [" + strings.Join(tags, ", ") + "]}}",
		"largest document":        "{any: [" + strings.Join(heavy, ", ") + "]}",
	}
}

// TestConditionsAtTheLimitsRunOnPostgreSQL: every condition the decoder accepts can be run,
// however deep, wide and large, with every kind of test: within PostgreSQL's parameter limit,
// its parser's stack, and (for many contacts) without planning a join per test.
func TestConditionsAtTheLimitsRunOnPostgreSQL(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	for _, f := range []crm.FieldDefinition{{Name: "plan", Type: "text"}, {Name: "note", Type: "text"}, {Name: "age", Type: "number"}} {
		require.NoError(t, crm.PutField(ctx, s, f))
	}
	var ids []int64
	for i := 0; i < 5; i++ {
		ext := fmt.Sprint("c", i)
		for _, e := range []crm.EventInput{
			{Name: "identify", Traits: map[string]any{"plan": fmt.Sprint("p", i), "age": 20 + i, "city": "c1", "renewal": now.Format(time.RFC3339)}},
			{Name: "e14", Properties: map[string]any{"k": 14}},
			{Name: "Order Completed", Properties: map[string]any{"order_id": ext, "total": 10, "c": 16, "products": []any{map[string]any{"sku": "S16"}}}},
			{Name: "page", Properties: map[string]any{"path": "/p15", "a": 15}},
		} {
			e.ExternalID, e.Source, e.OccurredAt = ext, "test", now.Add(-time.Hour)
			_, _, err := crm.RecordEvent(ctx, s, e)
			require.NoError(t, err)
		}
		c, err := crm.ContactByExternalID(ctx, s, ext)
		require.NoError(t, err)
		ids = append(ids, c.ID)
		_, err = crm.AddTag(ctx, s, crm.Action{Key: fmt.Sprint("tag", i), ContactID: c.ID, At: time.Now()}, fmt.Sprint("t", i))
		require.NoError(t, err)
	}
	// A journey's check: since_entry has a meaning. A generous limit: the point is that
	// PostgreSQL runs these at all, on a machine that may be busy.
	env := crm.Env{Now: now, EnteredAt: now.Add(-24 * time.Hour), Timeout: time.Minute}
	for name, doc := range atTheLimits() {
		cond, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err, name)
		_, err = crm.CountMatching(ctx, s, *cond, env)
		require.NoError(t, err, name)
		_, err = crm.SegmentContacts(ctx, s, *cond, env, 0, 10)
		require.NoError(t, err, name)
		_, err = crm.Matches(ctx, s, ids[0], *cond, env)
		require.NoError(t, err, name)
	}
}

// TestConditionsPastTheLimitsAreRefusedBeforeTheDatabase: one more of anything, and the
// decoder refuses the condition.
func TestConditionsPastTheLimitsAreRefusedBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	for name, doc := range atTheLimits() {
		var over string
		switch {
		case strings.HasPrefix(name, "deepest"):
			over = "{not: " + doc + "}"
		case name == "largest document":
			over = doc + strings.Repeat(" ", journey.MaxDocumentBytes-len(doc)+1)
		case strings.HasPrefix(name, "most"):
			second := strings.Index(doc[strings.Index(doc, "[")+1:], "[") + strings.Index(doc, "[") + 1
			over = doc[:second+1] + leaf(1) + ", " + doc[second+1:] // one more in the first group
		default:
			over = strings.Replace(doc, "[", "["+leaf(1)+", ", 1)
		}
		_, err := journey.DecodeCondition([]byte(over))
		require.Error(t, err, name)
	}
}

// TestPutSegmentRefusesSinceEntryAndConditionsPastTheLimits: a segment built in code is held
// to what a document is: thirty thousand tags are refused for their number, since_entry for
// having no meaning outside a journey.
func TestPutSegmentRefusesSinceEntryAndConditionsPastTheLimits(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	wide := journey.Condition{Any: make([]journey.Condition, 30_000)}
	for i := range wide.Any {
		wide.Any[i].Tag = fmt.Sprint("t", i)
	}
	since := journey.Condition{All: []journey.Condition{{Tag: "a"}, {Event: &journey.EventTest{Name: "x", SinceEntry: true}}}}
	for cond, want := range map[*journey.Condition]journey.Problem{
		&wide:  {Path: "condition.any", Message: "has 30000 conditions: at most 1000 are allowed"},
		&since: {Path: "condition.all[1].since_entry", Message: "only has a meaning in a journey (since the contact entered it); a segment has no entry: use within or between"},
	} {
		_, err := crm.PutSegment(ctx, s, crm.Segment{ID: "s", Condition: *cond})
		var ve *journey.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, []journey.Problem{want}, ve.Problems)
	}
	var n int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM segments`).Scan(&n))
	require.Zero(t, n)
}
