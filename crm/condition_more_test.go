package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// TestBehaviourAndCRMConditionsMatchTheContactsTheyDescribe covers lists, email engagement,
// page visits, purchases and spend, deals, tasks, journeys and contact age, each with its
// expected members written out.
func TestBehaviourAndCRMConditionsMatchTheContactsTheyDescribe(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	day := 24 * time.Hour
	ids := map[string]int64{}
	for _, name := range []string{"ann", "bob", "cyd"} {
		ids[name] = newContact(t, ctx, s, name, nil)
	}
	ev := func(who, name string, props map[string]any, ago time.Duration) {
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: who, Name: name, Properties: props, Source: crm.SourceCairn, OccurredAt: now.Add(-ago)})
		require.NoError(t, err)
	}
	_, err := crm.SetSubscription(ctx, s, crm.Action{Key: "l1", ContactID: ids["ann"], At: time.Now()}, "newsletter", true)
	require.NoError(t, err)
	_, err = crm.SetSubscription(ctx, s, crm.Action{Key: "l2", ContactID: ids["bob"], At: time.Now()}, "newsletter", true)
	require.NoError(t, err)
	_, err = crm.SetSubscription(ctx, s, crm.Action{Key: "l3", ContactID: ids["bob"], At: time.Now()}, "newsletter", false)
	require.NoError(t, err)
	ev("ann", "email_opened", map[string]any{"template": "welcome"}, day)
	ev("bob", "email_opened", map[string]any{"template": "promo"}, 20*day)
	ev("bob", "email_clicked", map[string]any{"template": "promo", "link": "https://x.example/a_b%"}, 20*day)
	ev("ann", "page", map[string]any{"path": "/pricing/teams"}, 2*day)
	ev("ann", "page", map[string]any{"path": "/pricing"}, 3*day)
	ev("bob", "page", map[string]any{"url": "https://shop.example.com/pricing"}, day)
	ev("cyd", "page", map[string]any{"path": "/blog/pricing"}, day)
	ev("ann", "Order Completed", map[string]any{"total": 120.5, "products": []any{map[string]any{"sku": "SKU-1"}}}, 10*day)
	ev("ann", "Order Completed", map[string]any{"total": "30", "products": []any{map[string]any{"product_id": "P-2"}}}, 100*day)
	ev("bob", "Order Completed", map[string]any{"revenue": 40}, day)
	ev("cyd", "cart_abandoned", nil, day)
	// The pipeline's order, not the order deals reached its stages, decides stage_at_least.
	_, err = crm.PutPipeline(ctx, s, crm.Pipeline{ID: "sales", Stages: []crm.Stage{{ID: "lead"}, {ID: "proposal"}, {ID: "won"}}})
	require.NoError(t, err)
	_, err = crm.CreateDeal(ctx, s, crm.Action{Key: "d1", ContactID: ids["ann"], At: time.Now()}, journey.Deal{Title: "Big", Pipeline: "sales", Stage: "proposal", Value: 5000})
	require.NoError(t, err)
	_, err = crm.CreateDeal(ctx, s, crm.Action{Key: "d2", ContactID: ids["bob"], At: time.Now()}, journey.Deal{Title: "Small", Pipeline: "sales", Stage: "lead", Value: 100})
	require.NoError(t, err)
	_, err = crm.CreateTask(ctx, s, crm.Action{Key: "t1", ContactID: ids["cyd"], At: time.Now()}, "Call", "ana", 0)
	require.NoError(t, err)
	onboarding, err := journey.Decode([]byte("id: onboarding\ntrigger: {event: x}\nsteps: [end]"))
	require.NoError(t, err)
	_, _, err = crm.ApplyJourney(ctx, s, onboarding, "")
	require.NoError(t, err)
	require.NoError(t, crm.Enroll(ctx, s, "onboarding", ids["ann"], "", 1, "wf", "r1", 0, now))
	require.NoError(t, crm.Enroll(ctx, s, "onboarding", ids["bob"], "", 1, "wf", "r2", 0, now))
	require.NoError(t, crm.EndEnrollment(ctx, s, "onboarding", ids["bob"], "r2", now))
	_, err = crm.UpdateFields(ctx, s, crm.Action{Key: "f1", ContactID: ids["bob"], At: time.Now()}, map[string]any{"signup": now.AddDate(-3, 0, 0).Format("2006-01-02")})
	require.NoError(t, err)
	_, err = crm.UpdateFields(ctx, s, crm.Action{Key: "f2", ContactID: ids["ann"], At: time.Now()}, map[string]any{"signup": now.AddDate(-3, 0, 1).Format("2006-01-02")})
	require.NoError(t, err)
	require.NoError(t, crm.RecordGoal(ctx, s, "onboarding", ids["cyd"], "activated", "r9", now))
	require.NoError(t, crm.RecordGoal(ctx, s, "onboarding", ids["cyd"], "activated", "r9", now), "recorded once")
	_, err = s.Exec(ctx, `UPDATE contacts SET created_at = now() - interval '90 days' WHERE external_id = 'cyd'`)
	require.NoError(t, err)

	cases := []struct {
		cond string
		want []string
	}{
		{"{list: newsletter}", []string{"ann"}},
		{"{opened: welcome}", []string{"ann"}},
		{"{opened: true, within: 7d}", []string{"ann"}},
		{"{not: {opened: true, within: 7d}}", []string{"bob", "cyd"}},
		{`{clicked: promo, where: {link: "https://x.example/a_b%"}}`, []string{"bob"}},
		{`{visited: "/pricing*"}`, []string{"ann"}},
		{`{visited: "*/pricing*", at_least: 2}`, []string{"ann"}},
		{`{visited: "*pricing", within: 36h}`, []string{"bob", "cyd"}},
		{"{purchased: SKU-1}", []string{"ann"}},
		{"{purchased: P-2, within: 30d}", []string{}},
		{"{purchased: true, at_least: 2}", []string{"ann"}},
		{"{total_spent: {gt: 100}}", []string{"ann"}},
		{"{total_spent: {gte: 40}, within: 7d}", []string{"bob"}},
		{"{total_spent: {lt: 1}}", []string{"cyd"}},
		{"{abandoned_cart: true}", []string{"cyd"}},
		{"{all: [{abandoned_cart: true}, {not: {purchased: true, within: 7d}}]}", []string{"cyd"}},
		{"{deal: {pipeline: sales}}", []string{"ann", "bob"}},
		{"{deal: {pipeline: sales, stage: proposal, value: {gte: 1000}}}", []string{"ann"}},
		{"{deal: {pipeline: sales, stage_at_least: lead}}", []string{"ann", "bob"}},
		{"{deal: {pipeline: sales, stage_at_least: proposal}}", []string{"ann"}},
		{"{deal: {pipeline: sales, stage_at_least: nowhere}}", []string{}},
		{"{not: {deal: {pipeline: sales, stage_at_least: proposal}}}", []string{"bob", "cyd"}},
		{"{open_task: true}", []string{"cyd"}},
		{"{in_journey: onboarding}", []string{"ann"}},
		{"{completed_journey: onboarding}", []string{"bob"}},
		{"{created_within: 30d}", []string{"ann", "bob"}},
		{"{field: signup, anniversary: true}", []string{"bob"}},
		{"{goal_met: {journey: onboarding, goal: activated}}", []string{"cyd"}},
	}
	for _, tc := range cases {
		requireMembers(t, ctx, s, ids, now, tc.cond, tc.want)
	}
}
