package e2e_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
)

// TestAKeyedWaitTakesThenOnlyForTheCartThatWasCheckedOut: a contact abandons two carts, so the
// keyed cart journey runs twice, once per cart; the checkout of the first cart takes that
// run's then path, and the run for the second cart keeps waiting.
func TestAKeyedWaitTakesThenOnlyForTheCartThatWasCheckedOut(t *testing.T) {
	s := setup(t)
	s.apply(t, "cart-keyed", `
id: cart-keyed
trigger: {cart_abandoned: true}
key: cart_id
steps:
  - id: bought?
    wait_until:
      condition: {event: Order Completed, where: {cart_id: {trigger: cart_id}}, since_entry: true}
      timeout: 1h
    then: [{id: thanks, update_fields: {last_converted_cart: converted}}]
    else: [{id: gave-up, add_tag: cart-lost}]
`)
	s.track(t, `{"userId":"kim","event":"cart_abandoned","properties":{"cart_id":"A-100","value":40}}`)
	s.track(t, `{"userId":"kim","event":"cart_abandoned","properties":{"cart_id":"B-200","value":15}}`)
	kim := s.contact(t, "kim")
	first := contract.KeyedWorkflowID("cart-keyed", kim, contract.RunKey("A-100"))
	second := contract.KeyedWorkflowID("cart-keyed", kim, contract.RunKey("B-200"))
	require.NotContains(t, first, "A-100", "the workflow ID names the cart by a hash")
	for _, id := range []string{first, second} {
		require.Eventually(t, func() bool {
			st := s.state(t, id)
			return st.CurrentStep == "bought?" && st.Status == contract.StatusWaiting
		}, 20*time.Second, 50*time.Millisecond, id)
	}
	require.Equal(t, 2, s.count(t, `SELECT count(*) FROM enrollments WHERE contact_id = $1 AND journey_id = 'cart-keyed' AND ended_at IS NULL`, kim))

	s.track(t, `{"userId":"kim","event":"Order Completed","properties":{"cart_id":"A-100","order_id":"o-1","total":40}}`)
	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, first, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, "condition met", st.Path[0].Outcome)
	require.Equal(t, "thanks", st.Path[1].Step)

	// The second cart's run heard the checkout too, and waits on: it was not its cart.
	require.Eventually(t, func() bool {
		st := s.state(t, second)
		for _, ev := range st.Events {
			if ev.Name == "Order Completed" {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	st = s.state(t, second)
	require.Equal(t, contract.StatusWaiting, st.Status)
	require.Equal(t, "bought?", st.CurrentStep)
	require.Zero(t, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'cart-lost'`))
	recordHistory(t, s, first, "keyed-wait-trigger-context")
}
