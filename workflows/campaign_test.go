package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/workflows"
)

func firingEnv(batches ...crm.BatchResult) (*testsuite.TestWorkflowEnvironment, *[]time.Time, *int) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.CampaignFiring, workflow.RegisterOptions{Name: contract.CampaignFiringType})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity("BeginFiring", mock.Anything, mock.Anything).Return(crm.FiringStart{Members: 20, Journey: "promo"}, nil)
	var calls []time.Time
	finished := 0
	env.OnActivity("EnterCampaignBatch", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FiringInput) (crm.BatchResult, error) {
		calls = append(calls, env.Now())
		if len(batches) == 0 {
			return crm.BatchResult{Entered: 1, More: true, Rate: 1000, Batch: 1}, nil
		}
		r := batches[0]
		batches = batches[1:]
		return r, nil
	})
	env.OnActivity("FinishFiring", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FiringInput) error {
		finished++
		return nil
	})
	return env, &calls, &finished
}

func TestAFiringEntersItsMembersInBatchesAtTheCampaignsRate(t *testing.T) {
	t.Parallel()
	env, calls, finished := firingEnv(
		crm.BatchResult{Entered: 8, More: true, Rate: 8, Batch: 8},
		crm.BatchResult{Entered: 8, More: true, Rate: 8, Batch: 8},
		crm.BatchResult{Entered: 4, Rate: 8, Batch: 8})
	env.ExecuteWorkflow(contract.CampaignFiringType, contract.CampaignInput{Campaign: "promo"})
	require.NoError(t, env.GetWorkflowError())
	var out contract.CampaignResult
	require.NoError(t, env.GetWorkflowResult(&out))
	require.Equal(t, int64(20), out.Members)
	require.Equal(t, int64(20), out.Entered)
	require.Equal(t, 3, out.Batches)
	require.Equal(t, 1, *finished)
	require.Len(t, *calls, 3)
	require.Equal(t, time.Second, (*calls)[1].Sub((*calls)[0]), "8 members at 8 a second: a second a batch")
	require.Equal(t, time.Second, (*calls)[2].Sub((*calls)[1]))
}

func TestAPausedFiringWaitsUntilItsCampaignIsResumed(t *testing.T) {
	t.Parallel()
	env, calls, finished := firingEnv(
		crm.BatchResult{Entered: 5, More: true, Rate: 100, Batch: 5},
		crm.BatchResult{Paused: true, Rate: 100, Batch: 5},
		crm.BatchResult{Entered: 5, Rate: 100, Batch: 5})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalResume, nil) }, 10*time.Second)
	env.ExecuteWorkflow(contract.CampaignFiringType, contract.CampaignInput{Campaign: "promo"})
	require.NoError(t, env.GetWorkflowError())
	var out contract.CampaignResult
	require.NoError(t, env.GetWorkflowResult(&out))
	require.Equal(t, int64(10), out.Entered)
	require.Equal(t, 1, *finished)
	require.InDelta(t, 10*time.Second, (*calls)[2].Sub((*calls)[1]), float64(time.Second), "resumed by the signal, not at the minute's look")
}

func TestALongFiringContinuesAsNewWhereItWas(t *testing.T) {
	t.Parallel()
	env, calls, _ := firingEnv() // one member a batch, never done
	env.ExecuteWorkflow(contract.CampaignFiringType, contract.CampaignInput{Campaign: "promo"})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "%v", err)
	require.Len(t, *calls, 300)
	var next contract.CampaignInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.True(t, next.Begun, "the members are not taken again")
	require.Equal(t, int64(300), next.Entered)
	require.Equal(t, int64(20), next.Members)
	require.NotEmpty(t, next.Firing, "the firing keeps its id")
}
