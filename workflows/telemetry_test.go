package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/telemetry"
	"github.com/cairnhq/cairn/workflows"
)

// stepsCounted is the sum of cairn_steps_total over every kind and outcome.
func stepsCounted(t *testing.T) float64 {
	t.Helper()
	mfs, err := telemetry.Registry.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "cairn_steps_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// Not parallel: it reads process-wide counters, which the parallel tests move.
func TestRunsAndStepsAreCountedWhenTheyHappenAndNeverOnReplay(t *testing.T) {
	runs := telemetry.RunsStarted.WithLabelValues("welcome")
	waits := telemetry.Steps.WithLabelValues("wait", telemetry.StepDone)
	steps, started, waited := stepsCounted(t), testutil.ToFloat64(runs), testutil.ToFloat64(waits)

	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
			Interceptors: []interceptor.WorkerInterceptor{telemetry.WorkerInterceptor()}})
		require.NoError(t, err)
		r.RegisterWorkflowWithOptions(workflows.ContactJourney, workflow.RegisterOptions{Name: contract.WorkflowType})
		r.RegisterWorkflowWithOptions(workflows.CampaignFiring, workflow.RegisterOptions{Name: contract.CampaignFiringType})
		require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
	}
	require.Equal(t, steps, stepsCounted(t), "replaying recorded histories counts no step")
	require.Equal(t, started, testutil.ToFloat64(runs), "nor any run")

	env, in := setup(t, welcome)
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{telemetry.WorkerInterceptor()}})
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, steps+3, stepsCounted(t), "add_tag, wait and send_email, once each")
	require.Equal(t, started+1, testutil.ToFloat64(runs))
	require.Equal(t, waited+1, testutil.ToFloat64(waits), "the 90-day wait counted done")
}
