package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
)

func TestScoringRulesAwardCappedPointsThatExpire(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	capPts := 15.0
	_, err := crm.PutScoringRule(ctx, s, crm.ScoringRule{ID: "pricing", Event: "page", Where: map[string]any{"path": "/pricing"},
		Points: 10, Cap: &capPts, CapPeriod: 24 * time.Hour, ExpiresAfter: 30 * 24 * time.Hour})
	require.NoError(t, err)
	_, err = crm.PutScoringRule(ctx, s, crm.ScoringRule{ID: "demo", Score: "sales", Event: "form_submitted", Points: 50})
	require.NoError(t, err)
	now := time.Now()
	record := func(name string, props map[string]any, at time.Time) {
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "ada", Name: name, Properties: props, Source: crm.SourceCairn, OccurredAt: at})
		require.NoError(t, err)
	}
	record("page", map[string]any{"path": "/pricing"}, now)
	record("page", map[string]any{"path": "/pricing"}, now.Add(time.Minute))
	record("page", map[string]any{"path": "/pricing"}, now.Add(2*time.Minute)) // cap reached
	record("page", map[string]any{"path": "/blog"}, now)                       // no rule
	record("form_submitted", map[string]any{"form": "demo"}, now)
	record("page", map[string]any{"path": "/pricing"}, now.Add(25*time.Hour)) // a new day

	c, err := crm.ContactByExternalID(ctx, s, "ada")
	require.NoError(t, err)
	scores, err := crm.Scores(ctx, s, c.ID)
	require.NoError(t, err)
	got := map[string]float64{}
	for _, sc := range scores {
		got[sc.Name] = sc.Value
	}
	require.Equal(t, map[string]float64{"": 25, "sales": 50}, got, "10 + 5 (capped at 15 a day) + 10 the next day")
	var changed int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM events WHERE name = 'score_changed'`).Scan(&changed))
	require.Equal(t, 4, changed)

	// 31 days on, the first day's 15 points have expired; the next day's 10 have not.
	n, err := crm.ExpireScores(ctx, s, now.Add(31*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	scores, err = crm.Scores(ctx, s, c.ID)
	require.NoError(t, err)
	require.Equal(t, 10.0, scores[0].Value)
	reasons := ""
	for _, r := range scores[0].Recent {
		reasons += r.Reason + "; "
	}
	require.Contains(t, reasons, "expired: rule pricing")
	n, err = crm.ExpireScores(ctx, s, now.Add(31*24*time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "expired once")
}
