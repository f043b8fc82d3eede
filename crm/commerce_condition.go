package crm

import (
	"encoding/json"
	"fmt"

	"github.com/cairnhq/cairn/journey"
)

// window writes the time limits an event-like test puts on col: the last N (within), a fixed
// period (between, end excluded) and since the contact entered the journey.
func (b *sqlBuilder) window(col, what string, within *journey.Duration, between *journey.Period, sinceEntry bool) (string, error) {
	out := ""
	if within != nil {
		if b.env.Now.IsZero() {
			return "", fmt.Errorf("%w: %s within needs a clock", ErrCondition, what)
		}
		out += " AND " + col + " >= " + b.arg(b.env.Now.Add(-within.D))
	}
	if between != nil {
		out += " AND " + col + " >= " + b.arg(between.From) + " AND " + col + " < " + b.arg(between.To)
	}
	if sinceEntry {
		if b.env.EnteredAt.IsZero() {
			return "", fmt.Errorf("%w: %s since_entry only has a meaning inside a journey", ErrCondition, what)
		}
		out += " AND " + col + " >= " + b.arg(b.env.EnteredAt)
	}
	return out, nil
}

// containment writes "col @> where" for a test's where, or nothing.
func (b *sqlBuilder) containment(col, what string, where map[string]any) (string, error) {
	if len(where) == 0 {
		return "", nil
	}
	js, err := json.Marshal(where)
	if err != nil {
		return "", fmt.Errorf("%w: %s where: %v", ErrCondition, what, err)
	}
	return " AND " + col + " @> " + b.arg(string(js)) + "::jsonb", nil
}

// counted writes how many rows of table (alias x, filtered by cond, which must not mention
// the contact) the contact has, against the test's at_least / at_most / exactly: "at least
// once" without a count. Both modes give the same answers; many-contact questions group once.
func (b *sqlBuilder) counted(table, x, cond string, e *journey.EventTest) string {
	if b.many {
		rows := "SELECT " + x + ".contact_id FROM " + table + " " + x + " WHERE " + cond
		having := func(op string, n int) string {
			return "c.id IN (" + rows + " GROUP BY " + x + ".contact_id HAVING count(*) " + op + " " + b.arg(n) + ")"
		}
		switch {
		case e.AtMost != nil:
			return "NOT " + having(">", *e.AtMost)
		case e.Exactly != nil && *e.Exactly == 0:
			return "NOT c.id IN (" + rows + ")"
		case e.Exactly != nil:
			return having("=", *e.Exactly)
		case e.AtLeast != nil && *e.AtLeast > 1:
			return having(">=", *e.AtLeast)
		case e.AtLeast != nil && *e.AtLeast == 0:
			return "true"
		}
		return "c.id IN (" + rows + ")"
	}
	mine := x + ".contact_id = c.id AND " + cond
	count := "(SELECT count(*) FROM " + table + " " + x + " WHERE " + mine + ")"
	switch {
	case e.AtMost != nil:
		return count + " <= " + b.arg(*e.AtMost)
	case e.Exactly != nil:
		return count + " = " + b.arg(*e.Exactly)
	case e.AtLeast != nil && *e.AtLeast > 1:
		return count + " >= " + b.arg(*e.AtLeast)
	case e.AtLeast != nil && *e.AtLeast == 0:
		return "true"
	}
	return "EXISTS (SELECT 1 FROM " + table + " " + x + " WHERE " + mine + ")"
}

// purchased counts the contact's orders (an order reported twice is one), by product through
// their lines, by properties through containment on the order's.
func (b *sqlBuilder) purchased(e *journey.EventTest) (string, error) {
	win, err := b.window("o.occurred_at", "purchased", e.Within, e.Between, e.SinceEntry)
	if err != nil {
		return "", err
	}
	where, err := b.containment("o.properties", "purchased", e.Where)
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

// abandonedCart counts the contact's carts abandoned (and not bought since), by when.
func (b *sqlBuilder) abandonedCart(e *journey.EventTest) (string, error) {
	win, err := b.window("k.abandoned_at", "abandoned_cart", e.Within, e.Between, e.SinceEntry)
	if err != nil {
		return "", err
	}
	where, err := b.containment("k.properties", "abandoned_cart", e.Where)
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
// or sku is on no order line of an order the contact placed at or after the view. A view that
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
		" WHERE o.contact_id = e.contact_id AND o.occurred_at >= e.occurred_at AND (l.product_id = " + id + " OR l.sku = " + sku + "))"
	return b.member("events", "e", cond), nil
}
