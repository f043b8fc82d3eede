package crm_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
)

func TestOrdersAreRecordedOnceWithTheirLines(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now()
	order := map[string]any{"order_id": "O-1", "total": 99.5, "revenue": 90, "currency": "EUR",
		"products": []any{map[string]any{"product_id": 7, "sku": "SKU-7", "name": "Lamp", "price": "49.75", "quantity": 2}, "not a line"}}
	for _, key := range []string{"m1", "m1", "m2"} { // a redelivery, then the shop reporting the order again
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "ann", Name: "Order Completed", Properties: order, Source: "test", DedupeKey: key, OccurredAt: now})
		require.NoError(t, err)
	}
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "ann", Name: "Order Completed", Properties: map[string]any{"revenue": 5}, Source: "test", OccurredAt: now})
	require.NoError(t, err)
	require.Equal(t, 3, count(t, ctx, s, `SELECT count(*) FROM events WHERE name = 'Order Completed'`))
	require.Equal(t, 2, count(t, ctx, s, `SELECT count(*) FROM orders`), "the repeated order_id is one order; an order without one is its own")
	var total, revenue float64
	var currency, product, sku string
	var price, qty float64
	require.NoError(t, s.QueryRow(ctx, `SELECT o.total::float8, o.revenue::float8, o.currency, l.product_id, l.sku, l.price::float8, l.quantity::float8
		FROM orders o JOIN order_lines l ON l.order_ref = o.id WHERE o.order_id = 'O-1'`).Scan(&total, &revenue, &currency, &product, &sku, &price, &qty))
	require.Equal(t, []any{99.5, 90.0, "EUR", "7", "SKU-7", 49.75, 2.0}, []any{total, revenue, currency, product, sku, price, qty})
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM order_lines`))
}

func TestCartsOpenConvertAndAreAbandoned(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC().Truncate(time.Second)
	id := newContact(t, ctx, s, "ann", nil)
	ev := eventsOf(t, s, "ann")
	carts := func() []string {
		t.Helper()
		rows, err := s.Query(ctx, `SELECT status || ':' || COALESCE(value::text, '-') || ':' || currency FROM carts WHERE contact_id = $1 ORDER BY id`, id)
		require.NoError(t, err)
		var out []string
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v))
			out = append(out, v)
		}
		require.NoError(t, rows.Err())
		return out
	}
	ev("Product Added", map[string]any{"product_id": "P1", "price": 10}, now.Add(-3*time.Hour))
	ev("Checkout Started", map[string]any{"value": 25, "currency": "EUR"}, now.Add(-2*time.Hour))
	require.Equal(t, []string{"open:25:EUR"}, carts())
	ev("Order Completed", map[string]any{"order_id": "O1", "total": 25}, now.Add(-time.Hour))
	require.Equal(t, []string{"converted:25:EUR"}, carts())

	ev("Cart Viewed", map[string]any{"cart_id": "c2"}, now.Add(-30*time.Minute))
	_, err := crm.RecordInternal(ctx, s, crm.Action{Key: "watch/abandoned", ContactID: id, At: time.Now()}, "cart_abandoned", map[string]any{"detected_by": "cairn", "cart_id": "c2"})
	require.NoError(t, err)
	_, err = crm.RecordInternal(ctx, s, crm.Action{Key: "watch/abandoned", ContactID: id, At: time.Now()}, "cart_abandoned", map[string]any{"detected_by": "cairn"})
	require.NoError(t, err)
	require.Equal(t, []string{"converted:25:EUR", "abandoned:-:"}, carts(), "the retried activity changes nothing")

	ev("Product Added", map[string]any{"product_id": "P2"}, now)
	require.Equal(t, []string{"converted:25:EUR", "abandoned:-:", "open:-:"}, carts(), "an abandonment stays on record; a new cart opens")

	other := newContact(t, ctx, s, "bob", nil)
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "bob", Name: "cart_abandoned", Properties: map[string]any{"value": "12.5"}, Source: "shop", OccurredAt: now})
	require.NoError(t, err)
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM carts WHERE contact_id = $1 AND status = 'abandoned' AND value = 12.5`, other),
		"a shop reporting abandonment of a cart Cairn never saw still records it")
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "bob", Name: "cart_abandoned", Properties: map[string]any{"value": "12.5"}, Source: "shop", OccurredAt: now.Add(time.Minute)})
	require.NoError(t, err)
	_, err = crm.RecordInternal(ctx, s, crm.Action{Key: "watch/bob", ContactID: other, At: time.Now()}, "cart_abandoned", map[string]any{"detected_by": "cairn"})
	require.NoError(t, err)
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM carts WHERE contact_id = $1`, other),
		"the same abandonment reported again, by the shop and by Cairn, is one cart")
}

// TestAnOrderReportedAgainLeavesANewerCartOpen: a shop resending an order (under a new
// messageId) after the contact started a new cart does not convert that cart, and neither
// does an order that happened before the cart existed.
func TestAnOrderReportedAgainLeavesANewerCartOpen(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC().Truncate(time.Second)
	id := newContact(t, ctx, s, "ann", nil)
	ev := eventsOf(t, s, "ann")
	ev("Order Completed", map[string]any{"order_id": "O1", "total": 25}, now.Add(-2*time.Hour))
	ev("Product Added", map[string]any{"product_id": "P1"}, now.Add(-time.Hour))
	ev("Order Completed", map[string]any{"order_id": "O1", "total": 25}, now.Add(-2*time.Hour))
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM carts WHERE contact_id = $1 AND status = 'open'`, id))
	ev("Order Completed", map[string]any{"order_id": "O0", "total": 5}, now.Add(-3*time.Hour))
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM carts WHERE contact_id = $1 AND status = 'open'`, id),
		"an order placed before the cart existed was not placed from it")
	ev("Order Completed", map[string]any{"order_id": "O2", "total": 9}, now)
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM carts WHERE contact_id = $1 AND status = 'converted'`, id))
}

func TestCommerceConditionsReadOrdersAndCarts(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	day := 24 * time.Hour
	ids := map[string]int64{}
	for _, name := range []string{"ann", "bob", "cyd", "dee"} {
		ids[name] = newContact(t, ctx, s, name, nil)
	}
	ev := func(who, name string, props map[string]any, at time.Time) {
		t.Helper()
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: who, Name: name, Properties: props, Source: "test", OccurredAt: at})
		require.NoError(t, err)
	}
	line := func(id, sku string) []any { return []any{map[string]any{"product_id": id, "sku": sku}} }
	jan1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feb1 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	// ann: one order reported twice, in January's first instant.
	ev("ann", "Order Completed", map[string]any{"order_id": "A1", "total": 80, "currency": "EUR", "products": line("P1", "S1")}, jan1)
	ev("ann", "Order Completed", map[string]any{"order_id": "A1", "total": 80, "currency": "EUR", "products": line("P1", "S1")}, jan1)
	// bob: an order at February's first instant (outside January), and one the day before.
	ev("bob", "Order Completed", map[string]any{"order_id": "B1", "total": 30, "currency": "USD", "products": line("P2", "S2")}, feb1)
	ev("bob", "Order Completed", map[string]any{"order_id": "B2", "total": 20, "currency": "USD", "products": line("P1", "S1")}, feb1.Add(-time.Second))
	// Views: cyd viewed P1 and never bought; ann viewed P1 after buying it; bob viewed S2 (by
	// sku) before buying it, and P3 without buying; dee viewed a page with no product.
	ev("cyd", "Product Viewed", map[string]any{"product_id": "P1"}, now.Add(-day))
	ev("ann", "Product Viewed", map[string]any{"product_id": "P1"}, now.Add(-day))
	ev("bob", "Product Viewed", map[string]any{"sku": "S2"}, feb1.Add(-time.Hour))
	ev("bob", "Product Viewed", map[string]any{"product_id": "P3"}, now.Add(-5*day))
	ev("dee", "Product Viewed", map[string]any{"name": "?"}, now.Add(-day))
	// Carts: cyd abandoned one two days ago; dee's was converted.
	ev("cyd", "Product Added", map[string]any{"product_id": "P1"}, now.Add(-3*day))
	ev("cyd", "cart_abandoned", map[string]any{"cart_id": "k1"}, now.Add(-2*day))
	ev("dee", "Product Added", map[string]any{"product_id": "P4"}, now.Add(-3*day))
	ev("dee", "Order Completed", map[string]any{"revenue": 5, "products": line("P4", "S4")}, now.Add(-2*day))

	for _, tc := range []struct {
		cond string
		want []string
	}{
		{"{purchased: true, at_least: 2}", []string{"bob"}},
		{"{purchased: true, exactly: 1}", []string{"ann", "dee"}},
		{"{purchased: S1}", []string{"ann", "bob"}},
		{"{purchased: P2, where: {currency: USD}}", []string{"bob"}},
		{"{purchased: true, where: {currency: EUR}}", []string{"ann"}},
		{"{purchased: true, between: [2026-01-01, 2026-02-01]}", []string{"ann", "bob"}},
		{"{purchased: true, between: [2026-01-01, 2026-02-01], at_least: 2}", []string{}},
		{`{purchased: true, between: ["2026-01-31T23:59:59Z", "2026-02-01T00:00:01Z"], at_least: 2}`, []string{"bob"}},
		{"{event: Order Completed, between: [2026-01-01, 2026-02-01]}", []string{"ann", "bob"}},
		{"{event: Order Completed, between: [2026-01-01, 2026-02-01], at_least: 2}", []string{"ann"}},
		{`{event: Order Completed, between: ["2026-01-01T00:00:01Z", "2026-02-01T00:00:00Z"]}`, []string{"bob"}},
		{"{total_spent: {gte: 50}}", []string{"bob", "ann"}},
		{"{total_spent: {gt: 50}}", []string{"ann"}},
		{"{total_spent: {lt: 10}}", []string{"cyd", "dee"}},
		{"{total_spent: {gt: 1}, within: 7d}", []string{"dee"}},
		{"{abandoned_cart: true}", []string{"cyd"}},
		{"{abandoned_cart: true, within: 1d}", []string{}},
		{"{abandoned_cart: true, where: {cart_id: k1}}", []string{"cyd"}},
		{"{viewed_not_purchased: true}", []string{"cyd", "ann", "bob"}},
		{"{viewed_not_purchased: true, within: 2d}", []string{"cyd", "ann"}},
		{"{viewed_not_purchased: true, product: S2}", []string{}},
		{"{viewed_not_purchased: true, product: P3}", []string{"bob"}},
		{"{not: {viewed_not_purchased: true}}", []string{"dee"}},
	} {
		requireMembers(t, ctx, s, ids, now, tc.cond, tc.want)
	}
}

// TestAViewIsBoughtWhateverIdentifierTheOrderLineUses: a shop may name the viewed product by
// product_id and the bought one by sku alone (or the other way round); it is still bought.
func TestAViewIsBoughtWhateverIdentifierTheOrderLineUses(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC().Truncate(time.Second)
	for who, line := range map[string]map[string]any{"eve": {"sku": "X1"}, "fay": {"product_id": "X1"}, "gus": {"sku": "X2"}} {
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: who, Name: "Product Viewed", Properties: map[string]any{"product_id": "X1"}, Source: "test", OccurredAt: now.Add(-time.Hour)})
		require.NoError(t, err)
		_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: who, Name: "Order Completed", Properties: map[string]any{"products": []any{line}}, Source: "test", OccurredAt: now})
		require.NoError(t, err)
	}
	ids := map[string]int64{}
	for _, who := range []string{"eve", "fay", "gus"} {
		c, err := crm.ContactByExternalID(ctx, s, who)
		require.NoError(t, err)
		ids[who] = c.ID
	}
	requireMembers(t, ctx, s, ids, now, "{viewed_not_purchased: true}", []string{"gus"})
}

// eventsOf records events of one contact, as its shop would send them.
func eventsOf(t *testing.T, s *pgxpool.Pool, who string) func(name string, props map[string]any, at time.Time) {
	return func(name string, props map[string]any, at time.Time) {
		t.Helper()
		_, _, err := crm.RecordEvent(t.Context(), s, crm.EventInput{ExternalID: who, Name: name, Properties: props, Source: "test", OccurredAt: at})
		require.NoError(t, err)
	}
}
