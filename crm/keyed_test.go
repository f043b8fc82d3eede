package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

func TestAKeyedConditionReadsTheRunsTriggerValue(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	id := newContact(t, ctx, s, "ann", nil)
	ev := eventsOf(t, s, "ann")
	ev("Product Added", map[string]any{"cart_id": "c-1", "sku": "A"}, now.Add(-3*time.Hour))
	ev("Order Completed", map[string]any{"cart_id": "c-1", "order_id": "o-1"}, now.Add(-time.Hour))

	for doc, want := range map[string]map[string]bool{
		"{event: Order Completed, where: {cart_id: {trigger: cart_id}}}":                          {"c-1": true, "c-2": false, "": false},
		"{purchased: true, where: {cart_id: {trigger: cart_id}}}":                                 {"c-1": true, "c-2": false, "": false},
		"{not: {event: Order Completed, where: {cart_id: {trigger: cart_id}}}}":                   {"c-1": false, "c-2": true, "": true},
		"{event: Order Completed, where: {cart_id: {trigger: cart_id}}, since_entry: true}":       {"c-1": false, "c-2": false, "": false},
		"{event: Order Completed, where: {cart_id: {trigger: cart_id}, order_id: o-1}}":           {"c-1": true, "c-2": false, "": false},
		"{event: Order Completed, where: {cart_id: {trigger: cart_id}}, at_most: 0}":              {"c-1": false, "c-2": true, "": true},
		"{event: Order Completed, where: {cart_id: {trigger: cart_id}}, within: 2h, at_least: 1}": {"c-1": true, "c-2": false, "": false},
	} {
		c, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err, doc)
		for cart, holds := range want {
			env := crm.Env{Now: now, EnteredAt: now.Add(-time.Minute)}
			if cart != "" {
				env.Trigger = map[string]any{"cart_id": cart}
			}
			got, err := crm.Matches(ctx, s, id, *c, env)
			require.NoError(t, err, doc)
			require.Equal(t, holds, got, "%s with trigger cart %q", doc, cart)
		}
	}
}
