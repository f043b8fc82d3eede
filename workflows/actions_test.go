package workflows_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/workflows"
)

func TestEveryActionStepCallsItsActivityWithAKeyForThatVisit(t *testing.T) {
	t.Parallel()
	env, in := setup(t, `
id: all-actions
trigger: {event: e}
steps:
  - {remove_tag: trial}
  - {update_fields: {plan: pro}}
  - {adjust_score: {by: -3, score: engagement}}
  - {subscribe: news}
  - {unsubscribe: offers}
  - {create_deal: {title: D, pipeline: sales, stage: new}}
  - {move_deal: {pipeline: sales, stage: won}}
  - {create_task: {title: Call, assignee: ana, due_in: 1d}}
  - {add_note: hello}
  - {start_journey: other}
  - {send_sms: Hi}
  - {notify: {text: New lead, channel: sales}}
  - {add_to_audience: lookalikes}
  - {remove_from_audience: lookalikes}
`)
	calls := map[string]activities.ActionInput{}
	for _, name := range []string{"RemoveTag", "UpdateFields", "AdjustScore", "Subscribe", "Unsubscribe", "CreateDeal", "MoveDeal",
		"CreateTask", "AddNote", "StartJourney", "SendSMS", "Notify", "AddToAudience", "RemoveFromAudience"} {
		env.OnActivity(name, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ActionInput) (activities.ActionOutput, error) {
			calls[name] = in
			return activities.ActionOutput{}, nil
		}).Once()
	}
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, calls, 14)
	keys := map[string]bool{}
	for name, c := range calls {
		require.Equal(t, int64(42), c.ContactID, name)
		require.Equal(t, "all-actions", c.Journey, name)
		require.True(t, strings.HasSuffix(c.Key, "/"+c.Step.ID+"/1"), "%s key %s names its step and visit", name, c.Key)
		keys[c.Key] = true
	}
	require.Len(t, keys, 14, "every step has its own key")
	require.Equal(t, -3.0, calls["AdjustScore"].Step.AdjustScore.By)
	require.Equal(t, "sales", calls["Notify"].Step.Notify.Channel)
}
