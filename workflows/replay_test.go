package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/workflows"
)

// TestRecordedHistoriesStillReplay guards determinism: every history in testdata, recorded
// from real runs (CAIRN_RECORD_HISTORY=1 go test ./e2e), must replay against today's code.
func TestRecordedHistoriesStillReplay(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.ContactJourney, workflow.RegisterOptions{Name: workflows.WorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
