package e2e_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
)

// TestACampaignEntersItsSegmentOnceEachAndPausingStopsEntries fires a campaign at a small
// segment through its Temporal Schedule: every member enters the journey once, at the
// campaign's rate; pausing it mid-way stops the entries until it is resumed; the API reports
// the firing's progress.
func TestACampaignEntersItsSegmentOnceEachAndPausingStopsEntries(t *testing.T) {
	s := setup(t)
	const members = 30
	for i := range members + 5 {
		plan := "pro"
		if i >= members {
			plan = "free"
		}
		status, body := s.call(t, "POST", "/v1/identify", fmt.Sprintf(`{"userId":"m%d","traits":{"plan":%q}}`, i, plan), asWriter)
		require.Equal(t, 200, status, body)
	}
	status, body := s.call(t, "PUT", "/v1/segments/pros", `{"condition": {"field": "plan", "equals": "pro"}}`, asAdmin)
	require.Equal(t, 201, status, body)
	s.apply(t, "promo", "id: promo\ntrigger: {manual: true}\nsteps: [{add_tag: promo}]")
	status, body = s.call(t, "PUT", "/v1/campaigns/promo", `{"segment": "pros", "journey": "promo", "schedule": {"every": "30d"}, "rate": 5, "batch": 5}`, asAdmin)
	require.Equal(t, 201, status, body)
	_, err := s.temporal.ScheduleClient().GetHandle(s.ctx, contract.CampaignScheduleID("promo")).Describe(s.ctx)
	require.NoError(t, err, "the campaign's Temporal Schedule")

	status, body = s.call(t, "POST", "/v1/campaigns/promo/fire", "", asAdmin)
	require.Equal(t, 202, status, body)
	entered := func() int {
		return s.count(t, `SELECT count(*) FROM events WHERE name = 'campaign_entered'`)
	}
	require.Eventually(t, func() bool { return entered() >= 5 }, 20*time.Second, 20*time.Millisecond)
	status, body = s.call(t, "POST", "/v1/campaigns/promo/pause", "", asAdmin)
	require.Equal(t, 200, status, body)
	paused := entered()
	require.Less(t, paused, members, "paused mid-way")
	time.Sleep(2500 * time.Millisecond)
	require.Equal(t, paused, entered(), "nobody enters while the campaign is paused")
	status, body = s.call(t, "POST", "/v1/campaigns/promo/resume", "", asAdmin)
	require.Equal(t, 200, status, body)

	var progress struct {
		Firings []struct {
			ID                                    string
			Members, Entered, Dispatched, Started int
			FinishedAt                            *time.Time `json:"finished_at"`
		}
	}
	require.Eventually(t, func() bool {
		_, body := s.call(t, "GET", "/v1/campaigns/promo", "", asAdmin)
		require.NoError(t, json.Unmarshal([]byte(body), &progress))
		return len(progress.Firings) == 1 && progress.Firings[0].FinishedAt != nil && progress.Firings[0].Dispatched == members
	}, 30*time.Second, 100*time.Millisecond)
	f := progress.Firings[0]
	require.Equal(t, members, f.Members)
	require.Equal(t, members, f.Entered)
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM events WHERE name = 'journey_completed' AND properties ->> 'journey' = 'promo'`) == members
	}, 20*time.Second, 50*time.Millisecond)
	// Each member once: one run, one tag; nobody outside the segment.
	require.Equal(t, members, s.count(t, `SELECT count(DISTINCT contact_id) FROM events WHERE name = 'journey_completed' AND properties ->> 'journey' = 'promo'`))
	require.Equal(t, members, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'promo'`))
	require.Zero(t, s.count(t, `SELECT count(*) FROM contact_tags t JOIN contacts c ON c.id = t.contact_id WHERE t.tag = 'promo' AND c.traits ->> 'plan' = 'free'`))
	var out contract.CampaignResult
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, f.ID, "").Get(s.ctx, &out))
	require.Equal(t, int64(members), out.Entered)
	require.Greater(t, out.Paused, time.Duration(0))
	recordHistory(t, s, f.ID, "campaign-firing")
}
