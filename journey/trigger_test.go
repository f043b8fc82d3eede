package journey_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func trigger(t *testing.T, doc string) journey.Trigger {
	t.Helper()
	j, err := journey.Decode([]byte("id: j\ntrigger: " + doc + "\nsteps: [end]"))
	require.NoError(t, err, doc)
	require.Len(t, j.Triggers, 1)
	return j.Triggers[0]
}

func TestEveryTriggerShortcutMatchesItsEventAndOnlyIt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		doc   string
		name  string
		props map[string]any
		other map[string]any // same event name, should not match
	}{
		{"{event: Signed Up}", "Signed Up", nil, nil},
		{"{event: Order Completed, where: {currency: EUR}}", "Order Completed", map[string]any{"currency": "EUR", "total": 3.0}, map[string]any{"currency": "USD"}},
		{"{tag_added: vip}", "tag_added", map[string]any{"tag": "vip"}, map[string]any{"tag": "lead"}},
		{"{tag_removed: trial}", "tag_removed", map[string]any{"tag": "trial"}, map[string]any{"tag": "vip"}},
		{"{list_subscribed: newsletter}", "list_subscribed", map[string]any{"list": "newsletter"}, map[string]any{"list": "offers"}},
		{"{form_submitted: contact}", "form_submitted", map[string]any{"form": "contact"}, map[string]any{"form": "demo"}},
		{`{page_visited: "/pricing*"}`, "page", map[string]any{"path": "/pricing/teams"}, map[string]any{"path": "/blog"}},
		{"{product_purchased: SKU-1}", "Order Completed", map[string]any{"products": []any{map[string]any{"sku": "SKU-0"}, map[string]any{"sku": "SKU-1"}}}, map[string]any{"products": []any{map[string]any{"sku": "SKU-2"}}}},
		{"{cart_abandoned: true}", "cart_abandoned", nil, nil},
		{"{email_opened: welcome}", "email_opened", map[string]any{"template": "welcome"}, map[string]any{"template": "other"}},
		{`{email_clicked: welcome, where: {link: "https://example.com/a"}}`, "email_clicked", map[string]any{"template": "welcome", "link": "https://example.com/a"}, map[string]any{"template": "welcome", "link": "https://example.com/b"}},
		{"{score_above: 50}", "score_changed", map[string]any{"name": "", "old": 45.0, "new": 52.0}, map[string]any{"name": "", "old": 55.0, "new": 60.0}},
		{"{score_above: 10, score: engagement}", "score_changed", map[string]any{"name": "engagement", "old": 0.0, "new": 10.0}, map[string]any{"name": "", "old": 0.0, "new": 10.0}},
		{"{deal_stage: won, where: {pipeline: sales}}", "deal_stage_changed", map[string]any{"stage": "won", "pipeline": "sales"}, map[string]any{"stage": "won", "pipeline": "hiring"}},
		{"{manual: true}", "manual_start", nil, nil},
	}
	for _, tc := range cases {
		tr := trigger(t, tc.doc)
		require.True(t, tr.Matches(tc.name, tc.props), "%s should match %v", tc.doc, tc.props)
		require.False(t, tr.Matches("Something Else", tc.props), tc.doc)
		if tc.other != nil {
			require.False(t, tr.Matches(tc.name, tc.other), "%s should not match %v", tc.doc, tc.other)
		}
	}
}

func TestTriggerAndReentryProblemsAreReported(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]string{
		"id: j\nsteps: [end]":                                                       "trigger: is required",
		"id: j\ntrigger: {tag_add: vip}\nsteps: [end]":                              "names no trigger",
		"id: j\ntrigger: {tag_added: vip, event: x}\nsteps: [end]":                  "one trigger per entry",
		"id: j\ntrigger: {event: x}\nreentry: {mode: after}\nsteps: [end]":          "reentry.wait: mode after needs a wait",
		"id: j\ntrigger: {event: x}\nreentry: {mode: twice}\nsteps: [end]":          `reentry.mode: "twice" is not one of`,
		"id: j\ntrigger: {event: x}\nreentry: {mode: once, wait: 2d}\nsteps: [end]": "only applies with mode: after",
		"id: j\ntrigger: {page_visited: \"\"}\nsteps: [end]":                        "needs a URL or path pattern",
	} {
		_, err := journey.Decode([]byte(doc))
		require.Error(t, err, doc)
		require.Contains(t, err.Error(), want, doc)
	}
}

func TestSeveralTriggersAndEntryConditionDecode(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte(`
id: j
triggers:
  - {tag_added: vip}
  - {event: Upgraded}
entry: {not: {tag: customer}}
reentry: {mode: after, wait: 30d}
steps: [end]
`))
	require.NoError(t, err)
	require.Equal(t, []string{"Upgraded", "tag_added"}, j.TriggerEvents())
	require.NotNil(t, j.TriggeredBy("Upgraded", nil))
	require.Nil(t, j.TriggeredBy("tag_added", map[string]any{"tag": "x"}))
	require.Equal(t, "not tag customer", j.Entry.String())
}
