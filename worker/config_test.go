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

func TestSendPolicyDefaultsComeFromTheEnvironmentAndRefuseNonsense(t *testing.T) {
	for _, ch := range []string{"EMAIL", "SMS", "NOTIFY"} {
		t.Setenv("CAIRN_"+ch+"_CAPS", "")
		t.Setenv("CAIRN_"+ch+"_QUIET_HOURS", "")
	}
	p, err := worker.PolicyFromEnv()
	require.NoError(t, err)
	require.Nil(t, p, "nothing set: no policy")

	t.Setenv("CAIRN_EMAIL_CAPS", "2/24h, 5/7d")
	t.Setenv("CAIRN_SMS_QUIET_HOURS", "21:00-08:00")
	p, err = worker.PolicyFromEnv()
	require.NoError(t, err)
	require.Len(t, p.Email.Caps, 2)
	require.Equal(t, "cap 5 per 1w", p.Email.Caps[1].String())
	require.Nil(t, p.Email.QuietHours)
	require.Equal(t, "quiet hours 21:00-08:00", p.SMS.QuietHours.String())
	require.Nil(t, p.Notify)

	t.Setenv("CAIRN_EMAIL_CAPS", "0/24h")
	_, err = worker.PolicyFromEnv()
	require.ErrorContains(t, err, "CAIRN_EMAIL_CAPS")
	require.ErrorContains(t, err, "lets nothing through")
	t.Setenv("CAIRN_EMAIL_CAPS", "")
	t.Setenv("CAIRN_SMS_QUIET_HOURS", "21:00-21:00")
	_, err = worker.PolicyFromEnv()
	require.ErrorContains(t, err, "CAIRN_SMS_QUIET_HOURS")
}
