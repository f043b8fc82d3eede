package crm

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnhq/cairn/journey"
)

// cartLineValues are the columns of a cart line read from a product object p.
const cartLineValues = `COALESCE(cairn_text(p -> 'product_id'), cairn_text(p -> 'sku')), cairn_text(p -> 'product_id'), cairn_text(p -> 'sku'),
       cairn_text(p -> 'name'), cairn_num(p -> 'price'), COALESCE(cairn_num(p -> 'quantity'), 1), cairn_text(p -> 'url'), cairn_text(p -> 'image_url')`

// replaceCartLinesSQL sets a cart's lines, deleted first, to an event's products list ($2); a
// product listed twice is one line with the quantities added.
const replaceCartLinesSQL = `
INSERT INTO cart_lines (cart_ref, product, product_id, sku, name, price, quantity, url, image_url, added_at)
SELECT $1, ` + cartLineValues + `, $3
FROM jsonb_array_elements($2::jsonb -> 'products') p
WHERE jsonb_typeof(p) = 'object' AND COALESCE(cairn_text(p -> 'product_id'), cairn_text(p -> 'sku')) IS NOT NULL
ON CONFLICT (cart_ref, product) DO UPDATE SET quantity = cart_lines.quantity + EXCLUDED.quantity`

// addCartLineSQL adds a Product Added's product ($2 is the event's properties) to the cart,
// or adds its quantity to the line already there.
const addCartLineSQL = `
INSERT INTO cart_lines (cart_ref, product, product_id, sku, name, price, quantity, url, image_url, added_at)
SELECT $1, ` + cartLineValues + `, $3
FROM (SELECT $2::jsonb AS p) e
WHERE COALESCE(cairn_text(p -> 'product_id'), cairn_text(p -> 'sku')) IS NOT NULL
ON CONFLICT (cart_ref, product) DO UPDATE
SET quantity = cart_lines.quantity + EXCLUDED.quantity,
    name = COALESCE(EXCLUDED.name, cart_lines.name), price = COALESCE(EXCLUDED.price, cart_lines.price),
    url = COALESCE(EXCLUDED.url, cart_lines.url), image_url = COALESCE(EXCLUDED.image_url, cart_lines.image_url)`

// removeCartLineSQL takes a Product Removed's product out of the cart.
const removeCartLineSQL = `
DELETE FROM cart_lines WHERE cart_ref = $1 AND product = COALESCE(cairn_text($2::jsonb -> 'product_id'), cairn_text($2::jsonb -> 'sku'))`

// recordCartLines keeps the lines of the cart an event just refreshed (or abandoned), in the
// transaction that records the event.
func recordCartLines(ctx context.Context, db DB, contactID int64, name string, props map[string]any, at time.Time) error {
	status := "open"
	if name == journey.EventCartAbandoned {
		status = "abandoned"
	}
	var cart int64
	// The open cart, or (for an abandonment) the cart just abandoned: the contact's latest.
	if err := db.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM carts WHERE contact_id = $1 AND status = $2`, contactID, status).Scan(&cart); err != nil {
		return fmt.Errorf("find cart: %w", err)
	}
	if cart == 0 {
		return nil
	}
	var err error
	switch _, list := props["products"].([]any); {
	case list:
		if _, err = db.Exec(ctx, `DELETE FROM cart_lines WHERE cart_ref = $1`, cart); err == nil {
			_, err = db.Exec(ctx, replaceCartLinesSQL, cart, props, at)
		}
	case name == "Product Added":
		_, err = db.Exec(ctx, addCartLineSQL, cart, props, at)
	case name == "Product Removed":
		_, err = db.Exec(ctx, removeCartLineSQL, cart, props)
	}
	if err != nil {
		return fmt.Errorf("record cart lines: %w", err)
	}
	return nil
}
