package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/workflows"
)

func cartEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *[]activities.CartAbandonedInput) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.CartWatch)
	env.RegisterActivity(&activities.Activities{})
	var recorded []activities.CartAbandonedInput
	env.OnActivity("RecordCartAbandoned", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CartAbandonedInput) (activities.ActionOutput, error) {
		recorded = append(recorded, in)
		return activities.ActionOutput{}, nil
	})
	return env, &recorded
}

func TestCartLeftIdleIsRecordedAsAbandonedAfterTheLastUpdate(t *testing.T) {
	t.Parallel()
	env, recorded := cartEnv(t)
	start := env.Now()
	var abandonedAt time.Time
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{Name: "Product Added", Properties: map[string]any{"cart_id": "c1", "value": 30.0}})
	}, 40*time.Minute)
	env.ExecuteWorkflow(workflows.CartWatch, contract.CartInput{ContactID: 7, Idle: time.Hour})
	abandonedAt = env.Now()
	require.NoError(t, env.GetWorkflowError())
	var st contract.CartState
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, "abandoned", st.Outcome)
	require.Len(t, *recorded, 1)
	require.Equal(t, "c1", (*recorded)[0].Cart["cart_id"])
	require.Equal(t, 100*time.Minute, abandonedAt.Sub(start).Round(time.Minute), "an hour after the last cart update, not the first")
}

func TestOrderEndsTheCartWatchWithoutAnAbandonment(t *testing.T) {
	t.Parallel()
	env, recorded := cartEnv(t)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalEvent, contract.Event{Name: journey.EventOrderCompleted})
	}, 20*time.Minute)
	env.ExecuteWorkflow(workflows.CartWatch, contract.CartInput{ContactID: 7, Idle: time.Hour})
	require.NoError(t, env.GetWorkflowError())
	var st contract.CartState
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, "converted", st.Outcome)
	require.Empty(t, *recorded)
}
