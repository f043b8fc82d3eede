package workflows_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/workflows"
)

const cartRecovery = `
id: cart
trigger: {event: Cart Abandoned}
goals:
  - id: purchased
    when: {event: Order Completed, since_entry: true}
    then: thank-you
    on_reach: %s
steps:
  - {id: reminder-1, add_tag: reminded}
  - {id: pause, wait: 2d}
  - {id: reminder-2, add_tag: reminded-twice}
  - {id: thank-you, add_tag: thanked}
`

func TestGoalMetDuringAWaitCancelsItAndJumpsToTheGoalStep(t *testing.T) {
	t.Parallel()
	f, run, after, signal := withCRM(t, fmt.Sprintf(cartRecovery, "continue"))
	after(func() { f.set("event Order Completed since entry", true); signal("Order Completed") }, 5*time.Hour)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"reminded", "thanked"}, f.tags, "reminder-2 is skipped")
	require.Equal(t, []string{"purchased"}, st.GoalsMet)
	require.Equal(t, "left: goal met", st.Path[1].Outcome)
	require.Equal(t, 5*time.Hour, st.Path[1].LeftAt.Sub(st.Path[1].EnteredAt), "the 2-day timer was cancelled at the purchase")
}

func TestGoalAlreadyMetAtEntrySkipsStraightToItsStep(t *testing.T) {
	t.Parallel()
	f, run, _, _ := withCRM(t, fmt.Sprintf(cartRecovery, "continue"))
	f.set("event Order Completed since entry", true)
	_, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"thanked"}, f.tags)
}

func TestGoalStepReachedWithoutTheGoalFollowsItsMode(t *testing.T) {
	t.Parallel()
	cases := map[string][]string{
		"continue": {"reminded", "reminded-twice", "thanked"},
		"end":      {"reminded", "reminded-twice"},
	}
	for mode, want := range cases {
		f, run, _, _ := withCRM(t, fmt.Sprintf(cartRecovery, mode))
		st, err := run()
		require.NoError(t, err, mode)
		require.Equal(t, want, f.tags, mode)
		require.Empty(t, st.GoalsMet, mode)
		require.Equal(t, contract.StatusCompleted, st.Status, mode)
	}
}

func TestGoalStepInWaitModeHoldsTheContactUntilTheGoalIsMet(t *testing.T) {
	t.Parallel()
	f, run, after, signal := withCRM(t, fmt.Sprintf(cartRecovery, "wait"))
	after(func() { f.set("event Order Completed since entry", true); signal("Order Completed") }, 10*24*time.Hour)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"reminded", "reminded-twice", "thanked"}, f.tags)
	require.Equal(t, []string{"purchased"}, st.GoalsMet)
	last := st.Path[len(st.Path)-1]
	require.Equal(t, "thank-you", last.Step)
	require.GreaterOrEqual(t, last.EnteredAt.Sub(st.Path[0].EnteredAt), 10*24*time.Hour)
}

func TestGoalWaitWithTimeoutGoesOnAfterIt(t *testing.T) {
	t.Parallel()
	doc := fmt.Sprintf(cartRecovery, "wait") + ""
	doc = doc[:len(doc)-len("steps:\n  - {id: reminder-1, add_tag: reminded}\n  - {id: pause, wait: 2d}\n  - {id: reminder-2, add_tag: reminded-twice}\n  - {id: thank-you, add_tag: thanked}\n")] +
		"    wait_timeout: 3d\nsteps:\n  - {id: thank-you, add_tag: thanked}\n"
	f, run, _, _ := withCRM(t, doc)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"thanked"}, f.tags)
	require.Empty(t, st.GoalsMet)
}

func TestGotoLoopsAtMostMaxTimes(t *testing.T) {
	t.Parallel()
	f, run, _, _ := withCRM(t, `
id: course
trigger: {event: e}
steps:
  - {id: lesson, add_tag: lesson}
  - {wait: 1d}
  - {goto: {step: lesson, max: 3}}
  - {add_tag: graduated}
`)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"lesson", "lesson", "lesson", "lesson", "graduated"}, f.tags)
	require.Equal(t, contract.StatusCompleted, st.Status)
}

func TestBranchTakesTheFirstPathWhoseConditionHolds(t *testing.T) {
	t.Parallel()
	doc := `
id: b
trigger: {event: e}
steps:
  - branch:
      - when: {tag: vip}
        steps: [{add_tag: vip-path}]
      - when: {tag: lead}
        steps: [{add_tag: lead-path}]
      - else: [{add_tag: default-path}]
`
	for holds, want := range map[string]string{"tag vip": "vip-path", "tag lead": "lead-path", "": "default-path"} {
		f, run, _, _ := withCRMFirstMatch(t, doc)
		if holds != "" {
			f.set(holds, true)
		}
		_, err := run()
		require.NoError(t, err)
		require.Equal(t, []string{want}, f.tags, holds)
	}
}

func TestRandomSplitFollowsItsPercentagesOverManyContacts(t *testing.T) {
	t.Parallel()
	doc := `
id: ab
trigger: {event: e}
steps:
  - split:
      - {percent: 20, steps: [{add_tag: a}]}
      - {percent: 80, steps: [{add_tag: b}]}
`
	counts := map[string]int{}
	const runs = 400
	for i := 0; i < runs; i++ {
		f, run, _, _ := withCRM(t, doc)
		_, err := run()
		require.NoError(t, err)
		require.Len(t, f.tags, 1)
		counts[f.tags[0]]++
	}
	// 20% of 400 = 80, standard deviation 8: 4 sigma either way.
	require.InDelta(t, 80, counts["a"], 32, "counts %v", counts)
	require.Equal(t, runs, counts["a"]+counts["b"])
}

func TestLongRunContinuesAsNewCarryingItsStateAndSignals(t *testing.T) {
	t.Parallel()
	const doc = `
id: long
trigger: {event: e}
steps:
  - {id: lesson, add_tag: lesson}
  - {wait: 1d}
  - {goto: {step: lesson, max: 5}}
  - {id: done, add_tag: done}
`
	env, in := setup(t, doc)
	f := wireFake(env)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 9, Name: "Page Viewed"})
		env.SetContinueAsNewSuggested(true)
	}, 36*time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next contract.Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Resume)
	require.Equal(t, 2, next.Resume.Next, "it continues at the step after the one in progress")
	require.Equal(t, 2, next.Resume.Visits["lesson"])
	require.Equal(t, int64(9), next.Resume.Events[0].ID, "the signal that arrived before is carried")
	require.Equal(t, []string{"lesson", "lesson"}, f.tags)

	// The new run picks up at the goto: four more lessons (it jumps back five times in all), then done.
	env2, _ := setup(t, doc)
	f2 := wireFake(env2)
	env2.ExecuteWorkflow(workflows.ContactJourney, next)
	require.NoError(t, env2.GetWorkflowError())
	var st contract.State
	require.NoError(t, env2.GetWorkflowResult(&st))
	require.Equal(t, []string{"lesson", "lesson", "lesson", "lesson", "done"}, f2.tags)
	require.Equal(t, "Page Viewed", st.Events[0].Name)
}

func TestGoalMetDuringAWaitUntilLeavesItForTheGoalStep(t *testing.T) {
	t.Parallel()
	f, run, after, signal := withCRM(t, `
id: demo
trigger: {event: e}
goals:
  - {id: booked, when: {event: Call Booked}, then: prep}
steps:
  - id: opened?
    wait_until: {condition: {event: Email Opened}, timeout: 7d}
    else: [{add_tag: cold}]
  - {add_tag: nudge}
  - {id: prep, add_tag: call-prep}
`)
	after(func() { f.set("event Call Booked", true); signal("Call Booked") }, 3*24*time.Hour)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"call-prep"}, f.tags)
	require.Equal(t, []string{"booked"}, st.GoalsMet)
	require.Equal(t, "left: goal met", st.Path[0].Outcome)
}
