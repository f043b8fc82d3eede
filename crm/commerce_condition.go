package crm

import "github.com/cairnhq/cairn/journey"

// purchased counts the contact's orders (an order reported twice is one), by product through
// their lines, by properties through containment on the order's.
func (b *sqlBuilder) purchased(e *journey.EventTest) (string, error) {
	win, err := b.window("o.occurred_at", "purchased", e.Within, e.Between, e.SinceEntry)
	if err != nil {
		return "", err
	}
	where, err := b.eventWhere("o.properties", "purchased", e)
	if err != nil {
		return "", err
	}
	cond := "true" + win + where
	if e.Product != "" {
		p := b.arg(e.Product) + "::text"
		cond += " AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_ref = o.id AND (l.sku = " + p + " OR l.product_id = " + p + "))"
	}
	return b.counted("orders", "o", cond, e), nil
}

// abandonedCart counts the contact's abandoned carts, by when they were abandoned (an order
// afterwards does not undo an abandonment: combine with not purchased for that).
func (b *sqlBuilder) abandonedCart(e *journey.EventTest) (string, error) {
	win, err := b.window("k.abandoned_at", "abandoned_cart", e.Within, e.Between, e.SinceEntry)
	if err != nil {
		return "", err
	}
	where, err := b.eventWhere("k.properties", "abandoned_cart", e)
	if err != nil {
		return "", err
	}
	return b.counted("carts", "k", "k.status = 'abandoned'"+win+where, e), nil
}

// totalSpent sums the contact's order totals (revenue when an order has no total).
func (b *sqlBuilder) totalSpent(bounds *journey.ScoreTest, within *journey.Duration) (string, error) {
	win, err := b.window("o.occurred_at", "total_spent", within, nil, false)
	if err != nil {
		return "", err
	}
	sum := "COALESCE((SELECT sum(COALESCE(o.total, o.revenue, 0)) FROM orders o WHERE o.contact_id = c.id" + win + "), 0)"
	return b.bounds(sum, bounds), nil
}

// viewedNotPurchased: a Product Viewed event (in the window, of the product) whose product_id
// or sku is on no order line (as its product_id or sku: shops fill one or the other, as
// purchased allows) of an order the contact placed at or after the view. A view that
// names no product is not a product view and never counts.
func (b *sqlBuilder) viewedNotPurchased(v *journey.ViewTest) (string, error) {
	win, err := b.window("e.occurred_at", "viewed_not_purchased", v.Within, nil, false)
	if err != nil {
		return "", err
	}
	id, sku := "cairn_text(e.properties -> 'product_id')", "cairn_text(e.properties -> 'sku')"
	cond := "e.name = 'Product Viewed'" + win + " AND (" + id + " IS NOT NULL OR " + sku + " IS NOT NULL)"
	if v.Product != "" {
		p := b.arg(v.Product) + "::text"
		cond += " AND (" + id + " = " + p + " OR " + sku + " = " + p + ")"
	}
	cond += " AND NOT EXISTS (SELECT 1 FROM orders o JOIN order_lines l ON l.order_ref = o.id" +
		" WHERE o.contact_id = e.contact_id AND o.occurred_at >= e.occurred_at AND (l.product_id IN (" + id + ", " + sku + ") OR l.sku IN (" + id + ", " + sku + ")))"
	return b.member("events", "e", cond), nil
}
