package crm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/splittest"
)

// Contacts are assigned in turn, each key once; a test with no significant difference is
// decided at max_duration for its declared default, recorded once: later looks, whatever the
// numbers say by then, keep that decision, and later contacts take the winner.
func TestASplitTestIsAssignedInTurnAndDecidedOnce(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	applyDoc(t, ctx, s, `id: j
trigger: {event: A}
goals: [{id: bought, when: {event: Order Completed}, then: thanks}]
steps:
  - id: offer
    split_test:
      variants: [{id: a, steps: [{add_tag: a}]}, {id: b, steps: [{add_tag: b}]}, {id: c, steps: [{add_tag: c}]}]
      metric: goal:bought
      min_sample: 5
      max_duration: 7d
      default: c
  - {id: thanks, add_tag: thanked}
`)
	test := journey.SplitTest{Variants: []journey.Variant{{ID: "a"}, {ID: "b"}, {ID: "c"}}, Metric: "goal:bought",
		MinSample: 5, Confidence: 0.95, MaxDuration: journey.Duration{D: 7 * 24 * time.Hour}, Default: "c"}
	start := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	visit := func(i int, at time.Time) *crm.SplitAssignment {
		t.Helper()
		id := newContact(t, ctx, s, fmt.Sprintf("c%d", i), nil)
		v := crm.SplitVisit{Key: fmt.Sprintf("journey:j:%d/r%d/offer/1", id, i), Journey: "j", Step: "offer", ContactID: id,
			RunKey: fmt.Sprintf("journey:j:%d/r%d/", id, i), RunID: fmt.Sprintf("r%d", i), At: at}
		got, err := crm.AssignSplit(ctx, s, v, test)
		require.NoError(t, err)
		again, err := crm.AssignSplit(ctx, s, v, test)
		require.NoError(t, err)
		require.Equal(t, got.Variant, again.Variant, "a retry takes the same variant")
		if got.Variant == "a" && i%2 == 0 {
			require.NoError(t, crm.RecordGoal(ctx, s, "j", id, "bought", v.RunID, at))
		}
		return got
	}
	var order []string
	for i := range 30 {
		a := visit(i, start.Add(time.Duration(i)*time.Hour))
		require.True(t, a.InTest)
		order = append(order, a.Variant)
	}
	require.Equal(t, []string{"a", "b", "c", "a", "b", "c"}, order[:6])

	res, err := crm.SplitResults(ctx, s, "j", "offer", test, start.Add(6*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, crm.SplitRunning, res.Status)
	require.Equal(t, "a", res.Leader)
	require.Equal(t, int64(10), res.Variants[0].Contacts)
	require.Equal(t, int64(5), res.Variants[0].Conversions)

	// At max_duration, a is ahead but not significantly (10 contacts each): the default wins.
	res, err = crm.SplitResults(ctx, s, "j", "offer", test, start.Add(8*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, crm.SplitDecided, res.Status)
	require.Equal(t, "c", res.Decision.Winner)
	require.Equal(t, splittest.ReasonMaxDuration, res.Decision.Reason)
	require.Equal(t, int64(5), res.Decision.Variants[0].Conversions, "decided on the numbers of the time")

	later := visit(99, start.Add(9*24*time.Hour))
	require.False(t, later.InTest)
	require.Equal(t, "c", later.Variant)
	test.Default = "a"
	res, err = crm.SplitResults(ctx, s, "j", "offer", test, start.Add(10*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, "c", res.Decision.Winner, "recorded once")
	require.Equal(t, start.Add(8*24*time.Hour), res.Decision.DecidedAt.UTC())
}
