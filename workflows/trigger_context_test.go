package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/workflows"
)

const keyedWait = `
id: carts
trigger: {cart_abandoned: true}
key: cart_id
steps:
  - id: bought?
    wait_until:
      condition: {event: Order Completed, where: {cart_id: {trigger: cart_id}}, since_entry: true}
      timeout: 1d
    then: [{add_tag: converted}]
    else: [{add_tag: lost}]
  - {id: mail, send_email: {template: cart}}
`

func TestAKeyedWaitTakesThenOnlyForTheCartThatStartedTheRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		checkout string
		tag      string
	}{{"c-1", "converted"}, {"c-2", "lost"}} {
		env, in := setup(t, keyedWait)
		var tags []string
		env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.AddTagInput) (activities.ActionOutput, error) {
			tags = append(tags, in.Tag)
			return activities.ActionOutput{}, nil
		})
		var triggers []map[string]any
		env.OnActivity("CheckCondition", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CheckInput) (bool, error) {
			triggers = append(triggers, in.Trigger)
			return false, nil
		})
		var mail activities.SendEmailInput
		env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SendEmailInput) (activities.ActionOutput, error) {
			mail = in
			return activities.ActionOutput{}, nil
		})
		// The trigger comes with the start, as SignalWithStart delivers it.
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 1, Name: "cart_abandoned", Properties: map[string]any{"cart_id": "c-1"}, OccurredAt: env.Now()})
		}, 0)
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(contract.SignalEvent, contract.Event{ID: 2, Name: "Order Completed", Properties: map[string]any{"cart_id": tc.checkout}, OccurredAt: env.Now()})
		}, time.Hour)
		env.ExecuteWorkflow(workflows.ContactJourney, in)
		require.NoError(t, env.GetWorkflowError())
		require.Equal(t, []string{tc.tag}, tags, tc.checkout)
		require.NotEmpty(t, triggers)
		for _, tr := range triggers {
			require.Equal(t, map[string]any{"cart_id": "c-1"}, tr, "every check knows the trigger's cart")
		}
		if tc.tag == "converted" {
			require.Len(t, triggers, 1, "the checkout of the trigger's cart settles the wait without the CRM")
		} else {
			require.Len(t, triggers, 2, "another cart's checkout asks nothing; the timeout takes a last look")
		}
		require.Equal(t, "cart_abandoned", mail.Trigger.Name, "the email knows the trigger")
		require.Equal(t, "Order Completed", mail.Event.Name, "and the latest event the run heard")
		var st contract.State
		require.NoError(t, env.GetWorkflowResult(&st))
	}
}

func TestTheTriggerIsCarriedAcrossContinueAsNew(t *testing.T) {
	t.Parallel()
	env, in := setup(t, keyedWait)
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	in.Resume = &contract.Resume{Next: 0, EnteredAt: env.Now(), Trigger: &contract.Event{ID: 1, Name: "cart_abandoned", Properties: map[string]any{"cart_id": "c-9"}}}
	var got map[string]any
	env.OnActivity("CheckCondition", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CheckInput) (bool, error) {
		got = in.Trigger
		return true, nil
	})
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, map[string]any{"cart_id": "c-9"}, got)
}
