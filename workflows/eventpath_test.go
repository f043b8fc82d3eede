package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/workflows"
)

func TestARunIgnoresAnEventItHasAlreadyHeard(t *testing.T) {
	t.Parallel()
	env, in := setup(t, "id: j\ntrigger: {event: e}\nsteps: [{wait: 1h}]")
	wireFake(env)
	for i, id := range []int64{7, 7, 8, 7} {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: id, Name: "Ping"})
		}, time.Duration(i+1)*time.Minute)
	}
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	var ids []int64
	for _, ev := range st.Events {
		ids = append(ids, ev.ID)
	}
	require.Equal(t, []int64{7, 8}, ids, "a repeated delivery (a dispatch retried after a failure) is heard once")
}

const fieldWait = `
id: upgrade
trigger: {event: e}
steps:
  - id: upgraded?
    wait_until: {condition: {field: plan, equals: pro}, timeout: 1d}
    then: [{add_tag: upgraded}]
    else: [{add_tag: not-upgraded}]
`

func TestAFieldWaitWakesOnAnyEventThatChangedTheFieldWhateverItsName(t *testing.T) {
	t.Parallel()
	env, in := setup(t, fieldWait)
	f := wireFake(env)
	var wokeAt time.Time
	env.RegisterDelayedCallback(func() {
		f.set("plan equals pro", true)
		// A track whose context traits changed plan: not an identify, not a field_changed.
		env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 1, Name: "Product Viewed", Changed: []string{"plan"}})
		wokeAt = env.Now()
	}, time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"upgraded"}, f.tags)
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, "condition met", st.Path[0].Outcome)
	require.WithinDuration(t, wokeAt, *st.Path[0].LeftAt, time.Second, "woken by the event, not at the timeout")
}

func TestAFieldWaitIgnoresEventsThatChangedOtherFields(t *testing.T) {
	t.Parallel()
	env, in := setup(t, fieldWait)
	f := wireFake(env)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 1, Name: "identify", Changed: []string{"city"}})
	}, time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"not-upgraded"}, f.tags)
	require.Equal(t, 2, f.checks, "one check on entry, one last look at the timeout; none for the unrelated change")
}

func TestAWaitUntilLooksOnceMoreAtItsTimeoutBeforeElse(t *testing.T) {
	t.Parallel()
	env, in := setup(t, fieldWait)
	f := wireFake(env)
	// The field changes and nobody tells the run (a direct write, a window that opened).
	env.RegisterDelayedCallback(func() { f.set("plan equals pro", true) }, time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"upgraded"}, f.tags)
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, "condition met at the timeout", st.Path[0].Outcome)
}

func TestAnExitSettledByTheEventItselfNeedsNoCheck(t *testing.T) {
	t.Parallel()
	env, in := setup(t, `
id: trial
trigger: {event: e}
exit: {event: Unsubscribed}
steps: [{wait: 30d}, {add_tag: too-late}]
`)
	f := wireFake(env)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 3, Name: "Unsubscribed", OccurredAt: env.Now()})
	}, time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, contract.StatusExited, st.Status)
	require.Empty(t, f.tags)
	require.Equal(t, 1, f.checks, "the exit is checked on entry; the event itself settles it later")
}

func TestATagExitIsSettledByTagAddedAndNotByOtherTags(t *testing.T) {
	t.Parallel()
	env, in := setup(t, `
id: trial
trigger: {event: e}
exit: {tag: customer}
steps: [{wait: 30d}, {add_tag: too-late}]
`)
	f := wireFake(env)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 3, Name: "tag_added", Properties: map[string]any{"tag": "lead"}})
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 4, Name: "tag_added", Properties: map[string]any{"tag": "customer"}})
	}, 2*time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, contract.StatusExited, st.Status)
	require.Equal(t, 1, f.checks, "tag_added of another tag settles {tag: customer} as still false")
}

func TestARunStartedWithItsEntryChecksAsksTheCRMNothingBeforeItsFirstStep(t *testing.T) {
	t.Parallel()
	env, in := setup(t, `
id: trial
trigger: {event: e}
exit: {tag: unsubscribed}
goals: [{id: bought, when: {event: Order Completed}, then: thanks}]
steps: [{add_tag: welcome}, {wait: 30d}, {id: thanks, add_tag: thanks}]
`)
	f := wireFake(env)
	in.Checked = &contract.EntryChecks{GoalsMet: []string{"bought"}}
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"thanks"}, f.tags, "the goal met on entry jumps straight to its step")
	require.Zero(t, f.checks, "no check before the first step")

	env, in = setup(t, "id: trial\ntrigger: {event: e}\nexit: {tag: unsubscribed}\nsteps: [{add_tag: welcome}]")
	f = wireFake(env)
	in.Checked = &contract.EntryChecks{Exited: true}
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, contract.StatusExited, st.Status)
	require.Empty(t, f.tags)
	require.Zero(t, f.checks)
}
