package crm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

func TestAFiringTakesTheMembersAtThatMomentAndEntersEachOnce(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	for i := range 25 {
		newContact(t, ctx, s, fmt.Sprint("m", i), map[string]any{"plan": map[bool]string{true: "pro", false: "free"}[i%5 != 0]})
	}
	cond, err := journey.DecodeCondition([]byte("{field: plan, equals: pro}"))
	require.NoError(t, err)
	_, err = crm.PutSegment(ctx, s, crm.Segment{ID: "pros", Condition: *cond})
	require.NoError(t, err)
	j, err := journey.Decode([]byte("id: promo\ntrigger: {manual: true}\nsteps: [{add_tag: promo}]"))
	require.NoError(t, err)
	_, _, err = crm.ApplyJourney(ctx, s, j, "")
	require.NoError(t, err)
	c, err := journey.DecodeCampaign([]byte("segment: pros\njourney: promo\nschedule: {every: 1d}\nrate: 10\nbatch: 8"), now)
	require.NoError(t, err)
	c.ID = "promo"
	_, err = crm.PutCampaign(ctx, s, c, "doc", func(crm.Campaign) error { return nil })
	require.NoError(t, err)

	start, err := crm.BeginFiring(ctx, s, "promo", "campaign:promo-1", now)
	require.NoError(t, err)
	require.Equal(t, crm.FiringStart{Members: 20, Journey: "promo"}, start)
	// A member joining the segment after the firing began is not in it.
	newContact(t, ctx, s, "late", map[string]any{"plan": "pro"})
	again, err := crm.BeginFiring(ctx, s, "promo", "campaign:promo-1", now)
	require.NoError(t, err)
	require.Equal(t, start, again, "a retried begin finds the firing begun")

	var entered []int
	for {
		r, err := crm.EnterCampaignBatch(ctx, s, "campaign:promo-1", now)
		require.NoError(t, err)
		require.Equal(t, 10, r.Rate)
		entered = append(entered, r.Entered)
		if !r.More {
			break
		}
	}
	require.Equal(t, []int{8, 8, 4}, entered)
	r, err := crm.EnterCampaignBatch(ctx, s, "campaign:promo-1", now)
	require.NoError(t, err)
	require.Equal(t, crm.BatchResult{Rate: 10, Batch: 8}, r, "a batch retried after the last enters nobody")
	require.Equal(t, 20, count(t, ctx, s, `SELECT count(*) FROM events WHERE name = 'campaign_entered'`))
	require.Equal(t, 20, count(t, ctx, s, `SELECT count(DISTINCT contact_id) FROM events WHERE name = 'campaign_entered' AND properties @> '{"journey": "promo", "firing": "campaign:promo-1"}'`))

	// A second firing enters the members of its own moment, late included.
	_, err = crm.BeginFiring(ctx, s, "promo", "campaign:promo-2", now)
	require.NoError(t, err)
	_, err = crm.SetCampaignPaused(ctx, s, "promo", true, func(crm.Campaign) error { return nil })
	require.NoError(t, err)
	r, err = crm.EnterCampaignBatch(ctx, s, "campaign:promo-2", now)
	require.NoError(t, err)
	require.True(t, r.Paused)
	require.Zero(t, r.Entered, "a paused campaign enters nobody")
	running, err := crm.SetCampaignPaused(ctx, s, "promo", false, func(crm.Campaign) error { return nil })
	require.NoError(t, err)
	require.Equal(t, []string{"campaign:promo-1", "campaign:promo-2"}, running, "neither finished")
	require.NoError(t, crm.FinishFiring(ctx, s, "campaign:promo-1", now))
	r, err = crm.EnterCampaignBatch(ctx, s, "campaign:promo-2", now)
	require.NoError(t, err)
	require.Equal(t, 8, r.Entered)

	firings, err := crm.CampaignFirings(ctx, s, "promo", 10)
	require.NoError(t, err)
	require.Len(t, firings, 2)
	byID := map[string]crm.Firing{}
	for _, f := range firings {
		byID[f.ID] = f
	}
	require.Equal(t, int64(20), byID["campaign:promo-1"].Members)
	require.Equal(t, int64(20), byID["campaign:promo-1"].Entered)
	require.NotNil(t, byID["campaign:promo-1"].FinishedAt)
	require.Equal(t, int64(21), byID["campaign:promo-2"].Members)
	require.Equal(t, int64(8), byID["campaign:promo-2"].Entered)
	require.Zero(t, byID["campaign:promo-2"].Dispatched, "nothing dispatched yet")
	require.Contains(t, crm.ContactTables(), "campaign_members")
}
