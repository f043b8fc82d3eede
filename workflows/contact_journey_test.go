package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/workflows"
)

func setup(t *testing.T, doc string) (*testsuite.TestWorkflowEnvironment, contract.Input) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.ContactJourney)
	env.RegisterActivity(&activities.Activities{})
	quietRecords(env)
	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	return env, contract.Input{Journey: *j, Version: 3, ContactID: 42}
}

const welcome = `
id: welcome
trigger: {event: Signed Up}
steps:
  - {add_tag: new-user}
  - {id: pause, wait: 90d}
  - {send_email: {template: welcome-1}}
`

func TestContactJourneyWalksEveryStepAndWaitsNinetyDaysOnATimer(t *testing.T) {
	t.Parallel()
	env, in := setup(t, welcome)
	var keys []string
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.AddTagInput) (activities.ActionOutput, error) {
		require.Equal(t, "new-user", in.Tag)
		require.Equal(t, int64(42), in.ContactID)
		keys = append(keys, in.Key)
		return activities.ActionOutput{}, nil
	})
	var emailAt time.Time
	var started time.Time
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SendEmailInput) (activities.ActionOutput, error) {
		require.Equal(t, "welcome-1", in.Template)
		emailAt = env.Now()
		keys = append(keys, in.Key)
		return activities.ActionOutput{}, nil
	})
	started = env.Now()
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, contract.StepEnded, st.CurrentStep)
	require.Len(t, st.Path, 3)
	require.Equal(t, []string{"1-add_tag", "pause", "3-send_email"}, []string{st.Path[0].Step, st.Path[1].Step, st.Path[2].Step})
	require.GreaterOrEqual(t, emailAt.Sub(started), 90*24*time.Hour, "the email goes out after the 90-day wait")
	require.Len(t, keys, 2)
	require.Contains(t, keys[0], "/1-add_tag/1")
	require.NotEqual(t, keys[0], keys[1])
}

func TestStateQueryShowsTheWaitInProgress(t *testing.T) {
	t.Parallel()
	env, in := setup(t, welcome)
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 7, Name: "Page Viewed"})
	}, time.Hour)
	var mid contract.State
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(contract.QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 2*time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())

	require.Equal(t, "pause", mid.CurrentStep)
	require.Equal(t, contract.StatusWaiting, mid.Status)
	require.NotNil(t, mid.WaitUntil)
	require.Equal(t, "welcome", mid.JourneyID)
	require.Equal(t, 3, mid.Version)
	require.Len(t, mid.Events, 1)
	require.Equal(t, "Page Viewed", mid.Events[0].Name)
	require.NotNil(t, mid.Path[0].LeftAt, "the tag step is finished")
	require.Nil(t, mid.Path[1].LeftAt, "the wait is not")
}

func TestEndStepStopsTheJourney(t *testing.T) {
	t.Parallel()
	env, in := setup(t, "id: j\ntrigger: {event: e}\nsteps: [{add_tag: a}, end]")
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil).Once()
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Len(t, st.Path, 2)
	require.Equal(t, "end", st.Path[1].Kind)
}

func TestPermanentActivityFailureFailsTheRunWithTheStepNamed(t *testing.T) {
	t.Parallel()
	env, in := setup(t, "id: j\ntrigger: {event: e}\nsteps: [{id: hello, send_email: {template: t}}]")
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(activities.ActionOutput{},
		temporal.NewNonRetryableApplicationError("contact 42: contact has no email address", activities.ErrTypeNoEmail, errors.New("no email")))
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "step hello")
	require.Contains(t, err.Error(), "no email address")
}

// quietRecords answers the CRM bookkeeping local activities (goal met, run ended).
func quietRecords(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity("RecordGoal", mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity("RecordRunEnd", mock.Anything, mock.Anything).Return(nil).Maybe()
}
