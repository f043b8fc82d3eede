package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/worker"
)

func TestTuningComesFromTheEnvironmentAndRefusesNonsense(t *testing.T) {
	t.Setenv("CAIRN_WORKER_ACTIVITIES", "200")
	t.Setenv("CAIRN_WORKER_WORKFLOW_TASKS", "50")
	t.Setenv("CAIRN_WORKER_LOCAL_ACTIVITIES", "100")
	t.Setenv("CAIRN_WORKER_ACTIVITY_POLLERS", "4")
	t.Setenv("CAIRN_WORKER_WORKFLOW_POLLERS", "6")
	t.Setenv("CAIRN_WORKER_STICKY_CACHE", "5000")
	t.Setenv("CAIRN_WORKER_STOP_TIMEOUT", "45s")
	t.Setenv("CAIRN_DB_MAX_CONNS", "24")
	got, err := worker.TuningFromEnv()
	require.NoError(t, err)
	require.Equal(t, worker.Tuning{Activities: 200, WorkflowTasks: 50, LocalActivities: 100, ActivityPollers: 4,
		WorkflowPollers: 6, StickyCache: 5000, StopTimeout: 45 * time.Second, DBMaxConns: 24}, got)

	t.Setenv("CAIRN_WORKER_ACTIVITY_POLLERS", "0")
	_, err = worker.TuningFromEnv()
	require.ErrorContains(t, err, "CAIRN_WORKER_ACTIVITY_POLLERS")
	t.Setenv("CAIRN_WORKER_ACTIVITY_POLLERS", "4")
	t.Setenv("CAIRN_WORKER_STOP_TIMEOUT", "soon")
	_, err = worker.TuningFromEnv()
	require.ErrorContains(t, err, "CAIRN_WORKER_STOP_TIMEOUT")
}
