package crm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairnhq/cairn/journey"
	"github.com/jackc/pgx/v5"
)

const insertOrderSQL = `
INSERT INTO orders (contact_id, order_id, total, revenue, currency, properties, occurred_at, event_id)
VALUES ($1, cairn_text($2::jsonb -> 'order_id'), cairn_num($2::jsonb -> 'total'), cairn_num($2::jsonb -> 'revenue'),
        COALESCE(cairn_text($2::jsonb -> 'currency'), ''), $2, $3, $4)
ON CONFLICT (contact_id, order_id) WHERE order_id IS NOT NULL DO NOTHING
RETURNING id`

// insertOrderLinesSQL takes the lines from the order's products list; entries that are not
// objects are skipped, and values of the wrong type are left empty, never refused.
const insertOrderLinesSQL = `
INSERT INTO order_lines (order_ref, product_id, sku, name, price, quantity)
SELECT $1, cairn_text(p -> 'product_id'), cairn_text(p -> 'sku'), cairn_text(p -> 'name'), cairn_num(p -> 'price'), cairn_num(p -> 'quantity')
FROM jsonb_array_elements(CASE WHEN jsonb_typeof($2::jsonb -> 'products') = 'array' THEN $2::jsonb -> 'products' ELSE '[]' END) p
WHERE jsonb_typeof(p) = 'object'`

// convertCartSQL converts the open cart, if any, when the contact orders; an order older than
// the cart (one reported late) was not placed from it.
const convertCartSQL = `
UPDATE carts SET status = 'converted', converted_at = $2, updated_at = GREATEST(updated_at, $2)
WHERE contact_id = $1 AND status = 'open' AND created_at <= $2`

// refreshCartSQL opens the contact's cart or refreshes the open one: a value or currency the
// event carries replaces the stored one, properties are merged.
const refreshCartSQL = `
INSERT INTO carts (contact_id, status, value, currency, properties, created_at, updated_at)
VALUES ($1, 'open', COALESCE(cairn_num($2::jsonb -> 'value'), cairn_num($2::jsonb -> 'total')),
        COALESCE(cairn_text($2::jsonb -> 'currency'), ''), $2, $3, $3)
ON CONFLICT (contact_id) WHERE status = 'open' DO UPDATE
SET value = COALESCE(EXCLUDED.value, carts.value),
    currency = COALESCE(NULLIF(EXCLUDED.currency, ''), carts.currency),
    properties = carts.properties || EXCLUDED.properties,
    updated_at = GREATEST(carts.updated_at, EXCLUDED.updated_at)`

// abandonCartSQL marks the open cart abandoned, or records an abandoned cart when there is
// none open (a shop that reports abandonment without reporting the cart) — unless the
// contact's latest cart is already abandoned: then this is the same abandonment reported again
// (by the shop and by Cairn's cart watch, or resent), not a second one.
const abandonCartSQL = `
WITH open AS (
    UPDATE carts SET status = 'abandoned', abandoned_at = $3, updated_at = GREATEST(updated_at, $3),
           properties = properties || $2, value = COALESCE(cairn_num($2::jsonb -> 'value'), cairn_num($2::jsonb -> 'total'), value)
    WHERE contact_id = $1 AND status = 'open'
    RETURNING id
)
INSERT INTO carts (contact_id, status, value, currency, properties, created_at, updated_at, abandoned_at)
SELECT $1, 'abandoned', COALESCE(cairn_num($2::jsonb -> 'value'), cairn_num($2::jsonb -> 'total')),
       COALESCE(cairn_text($2::jsonb -> 'currency'), ''), $2, $3, $3, $3
WHERE NOT EXISTS (SELECT 1 FROM open)
  AND NOT EXISTS (SELECT 1 FROM carts WHERE contact_id = $1 AND status = 'abandoned'
                  AND id = (SELECT max(id) FROM carts WHERE contact_id = $1))`

// recordCommerce keeps orders and carts in step with a newly recorded event, in the
// transaction that records it. It runs once per event: a redelivery is never recorded, and an
// order whose order_id the contact already has is not counted again.
func recordCommerce(ctx context.Context, db DB, contactID, eventID int64, name string, props map[string]any, at time.Time) error {
	switch {
	case name == journey.EventOrderCompleted:
		var orderRef int64
		err := db.QueryRow(ctx, insertOrderSQL, contactID, props, at, eventID).Scan(&orderRef)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // an order already recorded: its cart was converted then
		}
		if err != nil {
			return fmt.Errorf("record order: %w", err)
		}
		if _, err := db.Exec(ctx, insertOrderLinesSQL, orderRef, props); err != nil {
			return fmt.Errorf("record order lines: %w", err)
		}
		if _, err := db.Exec(ctx, convertCartSQL, contactID, at); err != nil {
			return fmt.Errorf("convert cart: %w", err)
		}
	case name == journey.EventCartAbandoned:
		if _, err := db.Exec(ctx, abandonCartSQL, contactID, props, at); err != nil {
			return fmt.Errorf("abandon cart: %w", err)
		}
		return recordCartLines(ctx, db, contactID, name, props, at)
	case slices.Contains(journey.CartEvents, name):
		if _, err := db.Exec(ctx, refreshCartSQL, contactID, props, at); err != nil {
			return fmt.Errorf("refresh cart: %w", err)
		}
		return recordCartLines(ctx, db, contactID, name, props, at)
	}
	return nil
}
