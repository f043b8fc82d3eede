package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/workflows"
)

// crmFake answers condition checks from a set of conditions that currently hold, keyed by
// their rendering ("tag vip"), and records the tags added.
type crmFake struct {
	mu     sync.Mutex
	holds  map[string]bool
	tags   []string
	checks int
}

func (f *crmFake) set(cond string, v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holds[cond] = v
}

// wireFake answers the activities from a crmFake.
func wireFake(env *testsuite.TestWorkflowEnvironment) *crmFake {
	f := &crmFake{holds: map[string]bool{}}
	env.OnActivity("CheckCondition", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CheckInput) (bool, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.checks++
		return f.holds[in.Condition.String()], nil
	})
	env.OnActivity("FirstMatch", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FirstMatchInput) (int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.checks++
		for i, c := range in.Conditions {
			if f.holds[c.String()] {
				return i, nil
			}
		}
		return -1, nil
	})
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.AddTagInput) (activities.ActionOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tags = append(f.tags, in.Tag)
		return activities.ActionOutput{}, nil
	})
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	return f
}

func withCRMFirstMatch(t *testing.T, doc string) (*crmFake, func() (contract.State, error), func(func(), time.Duration), func(string, ...map[string]any)) {
	return withCRM(t, doc)
}

func withCRM(t *testing.T, doc string) (*crmFake, func() (contract.State, error), func(func(), time.Duration), func(string, ...map[string]any)) {
	t.Helper()
	env, in := setup(t, doc)
	f := wireFake(env)
	run := func() (contract.State, error) {
		env.ExecuteWorkflow(workflows.ContactJourney, in)
		var st contract.State
		if err := env.GetWorkflowError(); err != nil {
			return st, err
		}
		return st, env.GetWorkflowResult(&st)
	}
	after := func(fn func(), d time.Duration) { env.RegisterDelayedCallback(fn, d) }
	signal := func(name string, props ...map[string]any) {
		ev := contract.Event{Name: name, OccurredAt: env.Now()}
		if len(props) > 0 {
			ev.Properties = props[0]
		}
		env.SignalWorkflow(contract.SignalEvent, ev)
	}
	return f, run, after, signal
}

func TestIfTakesThenWhenTheConditionHoldsAndElseOtherwise(t *testing.T) {
	t.Parallel()
	doc := `
id: vip
trigger: {event: e}
steps:
  - if: {tag: vip}
    then: [{add_tag: premium-offer}]
    else: [{add_tag: standard-offer}]
  - {add_tag: after}
`
	for _, vip := range []bool{true, false} {
		f, run, _, _ := withCRM(t, doc)
		f.set("tag vip", vip)
		st, err := run()
		require.NoError(t, err)
		want := "standard-offer"
		if vip {
			want = "premium-offer"
		}
		require.Equal(t, []string{want, "after"}, f.tags)
		require.Equal(t, "1-if."+map[bool]string{true: "then", false: "else"}[vip]+".1-add_tag", st.Path[1].Step)
	}
}

func TestWaitUntilMovesOnWhenARelevantEventMakesTheConditionTrue(t *testing.T) {
	t.Parallel()
	f, run, after, signal := withCRM(t, `
id: w
trigger: {event: e}
steps:
  - id: opened?
    wait_until: {condition: {event: Email Opened}, timeout: 3d}
    then: [{add_tag: engaged}]
    else: [{add_tag: cold}]
`)
	// An unrelated event does not trigger a check; the relevant one does.
	after(func() { signal("Page Viewed") }, time.Hour)
	after(func() { f.set("event Email Opened", true); signal("Email Opened") }, 2*time.Hour)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"engaged"}, f.tags)
	require.Equal(t, 1, f.checks, "one check at the start; the relevant event settles the condition itself: no polling")
	require.Equal(t, "condition met", st.Path[0].Outcome)
	require.Equal(t, 2*time.Hour, st.Path[0].LeftAt.Sub(st.Path[0].EnteredAt))
}

func TestWaitUntilTakesTheElsePathAtTheTimeout(t *testing.T) {
	t.Parallel()
	f, run, _, _ := withCRM(t, `
id: w
trigger: {event: e}
steps:
  - wait_until: {condition: {tag: buyer}, timeout: 2d}
    else: [{add_tag: cold}]
  - {add_tag: next}
`)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, []string{"cold", "next"}, f.tags)
	require.Equal(t, "timed out", st.Path[0].Outcome)
	require.Equal(t, 48*time.Hour, st.Path[0].LeftAt.Sub(st.Path[0].EnteredAt))
}

func TestExitConditionTakesTheContactOutOfAWait(t *testing.T) {
	t.Parallel()
	f, run, after, signal := withCRM(t, `
id: drip
trigger: {event: e}
exit: {tag: unsubscribed}
steps:
  - {add_tag: started}
  - {wait: 30d}
  - {add_tag: never}
`)
	after(func() { f.set("tag unsubscribed", true); signal("tag_added", map[string]any{"tag": "unsubscribed"}) }, 24*time.Hour)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, contract.StatusExited, st.Status)
	require.Equal(t, contract.StepExited, st.CurrentStep)
	require.Equal(t, []string{"started"}, f.tags)
	require.Equal(t, "left: exit condition met", st.Path[1].Outcome)
}

func TestContactAlreadyMatchingTheExitNeverStarts(t *testing.T) {
	t.Parallel()
	f, run, _, _ := withCRM(t, "id: j\ntrigger: {event: e}\nexit: {tag: customer}\nsteps: [{add_tag: x}]")
	f.set("tag customer", true)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, contract.StatusExited, st.Status)
	require.Empty(t, f.tags)
	require.Empty(t, st.Path)
}

func TestEndInsideABranchEndsTheWholeJourney(t *testing.T) {
	t.Parallel()
	f, run, _, _ := withCRM(t, `
id: j
trigger: {event: e}
steps:
  - if: {tag: done}
    then: [{add_tag: bye}, end]
  - {add_tag: more}
`)
	f.set("tag done", true)
	st, err := run()
	require.NoError(t, err)
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, []string{"bye"}, f.tags)
}
