package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/workflows"
)

const migrateV1 = `
id: mig
trigger: {event: e}
steps:
  - {id: hello, add_tag: hello}
  - {id: pause, wait: 10d}
  - {id: old-step, add_tag: old}
  - {id: rest, wait: 5d}
  - {id: bye, add_tag: bye}
`

const migrateV2 = `
id: mig
trigger: {event: e}
steps:
  - {id: hello, add_tag: hello}
  - {id: inserted, add_tag: inserted}
  - {id: pause-renamed, wait: 10d}
  - {id: rest, wait: 5d}
  - {id: bye, add_tag: bye}
`

func decodeJourney(t *testing.T, doc string) journey.Journey {
	t.Helper()
	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	return *j
}

// continuedAs reads the input a run continued as new with.
func continuedAs(t *testing.T, err error) contract.Input {
	t.Helper()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "the run continued as new: %v", err)
	var in contract.Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &in))
	return in
}

// A contact waiting at a mapped step moves at once: the run continues as new on the new
// version at the mapped step, carrying its path, visits and goals, and the wait's deadline.
func TestMigrateSignalMovesAWaitingContactKeepingItsDeadline(t *testing.T) {
	t.Parallel()
	env, in := setup(t, migrateV1)
	in.Version = 1
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	var moved []activities.MigrationRecord
	env.OnActivity("RecordMigration", mock.Anything, mock.Anything).Return(func(_ context.Context, r activities.MigrationRecord) error {
		moved = append(moved, r)
		return nil
	})
	start := env.Now()
	m := contract.Migration{ID: 7, From: 1, To: 2, Journey: decodeJourney(t, migrateV2), Map: map[string]string{"pause": "pause-renamed"}}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalMigrate, m) }, 3*24*time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)

	next := continuedAs(t, env.GetWorkflowError())
	require.Equal(t, 2, next.Version)
	require.Equal(t, "pause-renamed", next.Journey.Steps[next.Resume.Next].ID)
	require.Equal(t, int64(7), next.Resume.Migrated)
	require.Equal(t, "pause-renamed", next.Resume.Step)
	require.NotNil(t, next.Resume.Deadline)
	require.WithinDuration(t, start.Add(10*24*time.Hour), *next.Resume.Deadline, time.Second, "the old wait's deadline")
	require.Equal(t, map[string]int{"hello": 1, "pause": 1}, next.Resume.Visits)
	require.Len(t, next.Resume.Path, 2)
	require.Equal(t, "left: moved to version 2 at pause-renamed", next.Resume.Path[1].Outcome)
	require.Len(t, moved, 1)
	require.Equal(t, 2, moved[0].Version)

	// The new run waits out what was left of the old wait, then goes on with version 2.
	env2, _ := setup(t, migrateV2)
	var tags []string
	env2.SetStartTime(start.Add(3 * 24 * time.Hour))
	var byeAt time.Time
	env2.OnActivity("AddTag", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.AddTagInput) (activities.ActionOutput, error) {
		tags = append(tags, in.Tag)
		byeAt = env2.Now()
		return activities.ActionOutput{}, nil
	})
	env2.ExecuteWorkflow(workflows.ContactJourney, next)
	require.NoError(t, env2.GetWorkflowError())
	require.Equal(t, []string{"bye"}, tags, "nothing before the mapped step runs again; inserted steps before it are skipped")
	require.WithinDuration(t, start.Add(15*24*time.Hour), byeAt, time.Minute, "10d from the start, not from the move, then 5d")
	var st contract.State
	require.NoError(t, env2.GetWorkflowResult(&st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, "pause-renamed", st.Path[2].Step)
}

// A contact running an action when the signal comes moves at its next wait, if mapped; a run
// at a step the map leaves out, or on another version, stays.
func TestMigrateSignalWaitsForTheNextWaitAndLeavesUnmappedStepsAlone(t *testing.T) {
	t.Parallel()
	into := decodeJourney(t, migrateV2)
	t.Run("during an action", func(t *testing.T) {
		env, in := setup(t, migrateV1)
		in.Version = 1
		env.OnActivity("RecordMigration", mock.Anything, mock.Anything).Return(nil)
		m := contract.Migration{ID: 8, From: 1, To: 2, Journey: into, Map: map[string]string{"pause": "pause-renamed", "rest": "rest"}}
		env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.AddTagInput) (activities.ActionOutput, error) {
			if in.Tag == "old" {
				env.SignalWorkflow(contract.SignalMigrate, m)
			}
			return activities.ActionOutput{}, nil
		})
		env.ExecuteWorkflow(workflows.ContactJourney, in)
		next := continuedAs(t, env.GetWorkflowError())
		require.Equal(t, "rest", next.Resume.Step)
		require.Nil(t, next.Resume.Deadline, "it had not started waiting")
	})
	t.Run("unmapped step", func(t *testing.T) {
		env, in := setup(t, migrateV1)
		in.Version = 1
		env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
		m := contract.Migration{ID: 9, From: 1, To: 2, Journey: into, Map: map[string]string{"rest": "rest"}}
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalMigrate, m) }, time.Hour)
		other := m
		other.From = 5
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalMigrate, other) }, 12*24*time.Hour)
		env.ExecuteWorkflow(workflows.ContactJourney, in)
		require.NoError(t, env.GetWorkflowError(), "the run stays on version 1 and completes")
	})
	t.Run("default", func(t *testing.T) {
		env, in := setup(t, migrateV1)
		in.Version = 1
		env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
		env.OnActivity("RecordMigration", mock.Anything, mock.Anything).Return(nil)
		m := contract.Migration{ID: 10, From: 1, To: 2, Journey: into, Map: map[string]string{}, Default: "bye"}
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalMigrate, m) }, time.Hour)
		env.ExecuteWorkflow(workflows.ContactJourney, in)
		next := continuedAs(t, env.GetWorkflowError())
		require.Equal(t, "bye", next.Resume.Step)
		require.Nil(t, next.Resume.Deadline, "a wait moved to an action keeps no deadline")
	})
}

// The state query says what comes next and when: a wait's end, a wait_until's timeout with
// where the condition would lead, a window's opening.
func TestStateQuerySaysWhatComesNextAndWhen(t *testing.T) {
	t.Parallel()
	env, in := setup(t, `
id: nx
trigger: {event: e}
steps:
  - {id: pause, wait: 2d}
  - {id: ask, wait_until: {condition: {event: Clicked}, timeout: 1d}, then: [{id: yes, add_tag: y}]}
  - {id: window, wait_for_window: {days: [mon], from: "09:00", to: "10:00"}}
  - {id: last, add_tag: z}
`)
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	env.OnActivity("CheckCondition", mock.Anything, mock.Anything).Return(false, nil)
	start := env.Now()
	monday := start.Add(4 * 24 * time.Hour)
	env.OnActivity("ScheduleWait", mock.Anything, mock.Anything).Return(activities.ScheduleOutput{At: monday, Zone: "UTC", Note: "window opens"}, nil)
	query := func() *contract.Next {
		v, err := env.QueryWorkflow(contract.QueryState)
		require.NoError(t, err)
		var st contract.State
		require.NoError(t, v.Get(&st))
		return st.Next
	}
	var nexts []*contract.Next
	for _, at := range []time.Duration{time.Hour, 2*24*time.Hour + time.Hour, 3*24*time.Hour + time.Hour} {
		env.RegisterDelayedCallback(func() { nexts = append(nexts, query()) }, at)
	}
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, nexts, 3)
	require.Equal(t, "ask", nexts[0].Step)
	require.Equal(t, "timer", nexts[0].On)
	require.WithinDuration(t, start.Add(2*24*time.Hour), *nexts[0].At, time.Second)
	require.Equal(t, "window", nexts[1].Step, "at the timeout, the else path (empty): the next step")
	require.Equal(t, "yes", nexts[1].IfMet)
	require.Equal(t, "timeout", nexts[1].On)
	require.WithinDuration(t, start.Add(3*24*time.Hour), *nexts[1].At, time.Second)
	require.Equal(t, "last", nexts[2].Step)
	require.Equal(t, "window", nexts[2].On)
	require.True(t, monday.Equal(*nexts[2].At), "the window's opening")
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Nil(t, st.Next, "a run that is over has nothing next")
}

// A delivery whose provider or template is missing is not a failed run: Temporal retries it
// with backoff for a day, then the run schedules it again, until it goes through.
func TestDeliveryNotReadyWaitsPastADayAndGoesOnOnceConfigured(t *testing.T) {
	t.Parallel()
	env, in := setup(t, "id: nr\ntrigger: {event: e}\nsteps: [{id: hello, send_email: {template: later}}]")
	start := env.Now()
	calls := 0
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(func(context.Context, activities.SendEmailInput) (activities.ActionOutput, error) {
		calls++
		if env.Now().Sub(start) < 30*time.Hour {
			return activities.ActionOutput{}, temporal.NewApplicationError("no email provider is configured", activities.ErrTypeNotReady)
		}
		return activities.ActionOutput{}, nil
	})
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Greater(t, calls, 20, "retried with backoff")
	require.GreaterOrEqual(t, env.Now().Sub(start), 30*time.Hour)
}
