package workflows_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
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
			// Through Cairn's data converter, as a worker replays.
			cd := replayCodec(t)
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter: cluster.DataConverter(cd), FailureConverter: cluster.FailureConverter(cd)})
			require.NoError(t, err)
			r.RegisterWorkflowWithOptions(workflows.ContactJourney, workflow.RegisterOptions{Name: contract.WorkflowType})
			r.RegisterWorkflowWithOptions(workflows.CampaignFiring, workflow.RegisterOptions{Name: contract.CampaignFiringType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}

// TestReplayCatchesANonDeterministicChange proves the guard works: a version of the workflow
// that sleeps before its first step no longer matches the recorded histories.
func TestReplayCatchesANonDeterministicChange(t *testing.T) {
	t.Parallel()
	changed := func(ctx workflow.Context, in contract.Input) (contract.State, error) {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return contract.State{}, err
		}
		return workflows.ContactJourney(ctx, in)
	}
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: contract.WorkflowType})
	err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/welcome.json")
	require.Error(t, err)
	require.Contains(t, err.Error(), "TMPRL1100", "the SDK's non-determinism error")
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// replayCodec is Cairn's codec over a fresh CRM: replay decodes the recorded payloads (plain:
// these histories predate the codec) and encodes the commands it makes again, as a worker does.
func replayCodec(t *testing.T) *codec.Codec {
	t.Helper()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(context.Background(), pool))
	ring, err := codec.ParseKeyRing(codec.NewKeyEntry("replay"))
	require.NoError(t, err)
	cd, err := codec.New(codec.Options{Ring: ring, DB: pool})
	require.NoError(t, err)
	return cd
}
