package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/email"
)

// TemplateInput says what a template is rendered for besides the contact.
type TemplateInput struct {
	ContactID int64
	// Trigger is the event that started the run, Event the latest one it heard (zero: none).
	Trigger, Event email.Event
	// Timezone is the journey's, for a contact without one of its own.
	Timezone string
	// Now is when the template is rendered (recommendations' windows are measured from it).
	Now time.Time
}

// TemplateContext reads what a template sees of the contact besides its fields: tags, scores,
// time zone, the cart it has not checked out with its lines, its last order with its lines,
// its custom object records, and recommendations (read when the template asks, through db).
func TemplateContext(ctx context.Context, db DB, in TemplateInput) (email.Context, error) {
	c := email.Context{Trigger: in.Trigger, Event: in.Event, Scores: map[string]float64{}, Tags: []string{}}
	var zone *string
	var scores map[string]float64
	var score float64
	err := db.QueryRow(ctx, `SELECT timezone, score::float8, scores,
			COALESCE((SELECT array_agg(tag ORDER BY tag) FROM contact_tags WHERE contact_id = c.id), '{}')
		FROM contacts c WHERE id = $1`, in.ContactID).Scan(&zone, &score, &scores, &c.Tags)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("contact %d: %w", in.ContactID, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("read contact for template: %w", err)
	}
	for k, v := range scores {
		c.Scores[k] = v
	}
	c.Scores[""] = score
	c.Timezone = in.Timezone
	if zone != nil && *zone != "" {
		if _, err := time.LoadLocation(*zone); err == nil {
			c.Timezone = *zone
		}
	}
	if c.Cart, err = templateCart(ctx, db, in.ContactID, in.Trigger.Properties["cart_id"]); err != nil {
		return c, err
	}
	if c.Order, err = templateOrder(ctx, db, in.ContactID); err != nil {
		return c, err
	}
	if c.Objects, err = templateObjects(ctx, db, in.ContactID); err != nil {
		return c, err
	}
	now := in.Now
	c.Recommend = func(n int) ([]email.Product, error) {
		return Recommend(ctx, db, in.ContactID, n, now)
	}
	return c, nil
}

// templateCart reads the cart the contact has not checked out: the one the trigger names by
// cart_id when there is one, else the open cart, else the last abandoned one.
func templateCart(ctx context.Context, db DB, contactID int64, cartID any) (email.Cart, error) {
	var k email.Cart
	var value *float64
	err := db.QueryRow(ctx, `SELECT id, status, value::float8, currency, properties, updated_at FROM carts
		WHERE contact_id = $1 AND status IN ('open', 'abandoned')
		ORDER BY ($2::jsonb IS NOT NULL AND properties -> 'cart_id' = $2::jsonb) DESC, status = 'open' DESC, updated_at DESC, id DESC
		LIMIT 1`, contactID, jsonOrNil(cartID)).Scan(&k.ID, &k.Status, &value, &k.Currency, &k.Properties, &k.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, nil
	}
	if err != nil {
		return k, fmt.Errorf("read cart for template: %w", err)
	}
	rows, err := db.Query(ctx, `SELECT COALESCE(product_id, ''), COALESCE(sku, ''), COALESCE(name, ''), COALESCE(price, 0)::float8,
			quantity::float8, COALESCE(url, ''), COALESCE(image_url, '')
		FROM cart_lines WHERE cart_ref = $1 ORDER BY added_at, product`, k.ID)
	if err != nil {
		return k, fmt.Errorf("read cart lines: %w", err)
	}
	k.Lines, err = pgx.CollectRows(rows, pgx.RowToStructByPos[email.Line])
	if err != nil {
		return k, fmt.Errorf("read cart lines: %w", err)
	}
	if value != nil {
		k.Value = *value
	} else {
		// No cart event gave a value (a shop sends one with Checkout Started): the lines'.
		for _, l := range k.Lines {
			k.Value += l.Total()
		}
	}
	return k, nil
}

// templateOrder reads the contact's last order with its lines.
func templateOrder(ctx context.Context, db DB, contactID int64) (email.Order, error) {
	var o email.Order
	err := db.QueryRow(ctx, `SELECT id, COALESCE(order_id, ''), COALESCE(total, revenue, 0)::float8, currency, properties, occurred_at
		FROM orders WHERE contact_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT 1`, contactID).
		Scan(&o.ID, &o.OrderID, &o.Total, &o.Currency, &o.Properties, &o.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("read order for template: %w", err)
	}
	rows, err := db.Query(ctx, `SELECT COALESCE(product_id, ''), COALESCE(sku, ''), COALESCE(name, ''), COALESCE(price, 0)::float8,
			COALESCE(quantity, 1)::float8, '', ''
		FROM order_lines WHERE order_ref = $1 ORDER BY id`, o.ID)
	if err != nil {
		return o, fmt.Errorf("read order lines: %w", err)
	}
	o.Lines, err = pgx.CollectRows(rows, pgx.RowToStructByPos[email.Line])
	if err != nil {
		return o, fmt.Errorf("read order lines: %w", err)
	}
	return o, nil
}

// jsonOrNil passes a property value as a jsonb parameter (its JSON text), or NULL.
func jsonOrNil(v any) *string {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	s := string(b)
	return &s
}

// TemplateData is everything a template is rendered with for the contact, as an email send
// renders it (without claiming a send): its fields and score, and TemplateContext.
func TemplateData(ctx context.Context, db DB, in TemplateInput) (email.Data, error) {
	d, _, err := contactData(ctx, db, in.ContactID)
	if err != nil {
		return d, err
	}
	d.Context, err = TemplateContext(ctx, db, in)
	return d, err
}
