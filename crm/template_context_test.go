package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
)

func TestCartLinesFollowTheCartEvents(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC().Truncate(time.Second)
	id := newContact(t, ctx, s, "ann", nil)
	ev := eventsOf(t, s, "ann")
	lines := func() []string {
		t.Helper()
		c, err := crm.TemplateContext(ctx, s, crm.TemplateInput{ContactID: id, Now: now})
		require.NoError(t, err)
		var out []string
		for _, l := range c.Cart.Lines {
			out = append(out, l.Product()+"×"+formatQty(l.Quantity))
		}
		return out
	}
	ev("Product Added", map[string]any{"cart_id": "k1", "product_id": "lamp", "name": "Lamp", "price": 20, "quantity": 1}, now.Add(-5*time.Minute))
	ev("Product Added", map[string]any{"cart_id": "k1", "sku": "BULB-1", "name": "Bulb", "price": "3.5"}, now.Add(-4*time.Minute))
	ev("Product Added", map[string]any{"cart_id": "k1", "product_id": "lamp", "quantity": 2}, now.Add(-3*time.Minute))
	require.Equal(t, []string{"lamp×3", "BULB-1×1"}, lines())
	ev("Product Removed", map[string]any{"cart_id": "k1", "sku": "BULB-1"}, now.Add(-2*time.Minute))
	require.Equal(t, []string{"lamp×3"}, lines())
	c, err := crm.TemplateContext(ctx, s, crm.TemplateInput{ContactID: id, Now: now})
	require.NoError(t, err)
	require.Equal(t, 60.0, c.Cart.Value, "no event gave the cart a value: its lines' sum")
	// A products list replaces the lines: the shop's view of the cart wins.
	ev("Checkout Started", map[string]any{"cart_id": "k1", "value": 52, "currency": "EUR", "products": []any{
		map[string]any{"product_id": "lamp", "name": "Lamp", "price": 20, "quantity": 2},
		map[string]any{"product_id": "shade", "name": "Shade", "price": 12, "url": "https://shop.example.com/p/shade"},
		map[string]any{"name": "no id"}, "not a product"}}, now.Add(-time.Minute))
	require.Equal(t, []string{"lamp×2", "shade×1"}, lines())
	// Abandoned, the cart keeps its lines: it is what the recovery email lists.
	ev("cart_abandoned", map[string]any{"cart_id": "k1"}, now)
	c, err = crm.TemplateContext(ctx, s, crm.TemplateInput{ContactID: id, Now: now})
	require.NoError(t, err)
	require.Equal(t, "abandoned", c.Cart.Status)
	require.Equal(t, 52.0, c.Cart.Value)
	require.Equal(t, "EUR", c.Cart.Currency)
	require.Equal(t, "https://shop.example.com/p/shade", c.Cart.Lines[1].URL)
	require.Equal(t, 40.0, c.Cart.Lines[0].Total())
	// Erasure takes the lines with the cart.
	require.Contains(t, crm.ContactTables(), "cart_lines")
}

func formatQty(q float64) string { return map[float64]string{1: "1", 2: "2", 3: "3"}[q] }

func TestATemplateSeesTheCartTheRunIsAboutTheLastOrderTagsScoresAndZone(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC().Truncate(time.Second)
	id := newContact(t, ctx, s, "bo", map[string]any{"timezone": "Europe/Lisbon"})
	ev := eventsOf(t, s, "bo")
	ev("Order Completed", map[string]any{"order_id": "o-1", "total": 30, "currency": "USD", "products": []any{
		map[string]any{"sku": "MUG", "name": "Mug", "price": 10, "quantity": 3}}}, now.Add(-48*time.Hour))
	ev("Cart Viewed", map[string]any{"cart_id": "first", "products": []any{map[string]any{"sku": "A", "price": 1}}}, now.Add(-3*time.Hour))
	ev("cart_abandoned", map[string]any{"cart_id": "first"}, now.Add(-2*time.Hour))
	ev("Cart Viewed", map[string]any{"cart_id": "second", "products": []any{map[string]any{"sku": "B", "price": 2}}}, now.Add(-time.Hour))
	_, err := crm.AddTag(ctx, s, crm.Action{Key: "t1", ContactID: id, At: now}, "vip")
	require.NoError(t, err)
	require.NoError(t, crm.SetScore(ctx, s, id, "engagement", 12))

	c, err := crm.TemplateContext(ctx, s, crm.TemplateInput{ContactID: id, Now: now, Timezone: "UTC"})
	require.NoError(t, err)
	require.Equal(t, "open", c.Cart.Status, "the open cart first")
	require.Equal(t, "B", c.Cart.Lines[0].SKU)
	require.Equal(t, []string{"vip"}, c.Tags)
	require.Equal(t, 12.0, c.Scores["engagement"])
	require.Equal(t, "Europe/Lisbon", c.Timezone, "the contact's zone before the journey's")
	require.Equal(t, "o-1", c.Order.OrderID)
	require.Equal(t, []email.Line{{SKU: "MUG", Name: "Mug", Price: 10, Quantity: 3}}, c.Order.Lines)

	// A run started by the first cart's abandonment lists that cart.
	c, err = crm.TemplateContext(ctx, s, crm.TemplateInput{ContactID: id, Now: now,
		Trigger: email.Event{Name: "cart_abandoned", Properties: map[string]any{"cart_id": "first"}}})
	require.NoError(t, err)
	require.Equal(t, "abandoned", c.Cart.Status)
	require.Equal(t, "A", c.Cart.Lines[0].SKU)
	require.Equal(t, "cart_abandoned", c.Trigger.Name)
}
