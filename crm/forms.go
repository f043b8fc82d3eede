package crm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Form says what a form submission does.
type Form struct {
	ID string `json:"id"`
	// Fields maps a submitted field name to a contact field ("E-mail" → "email"); fields not
	// mapped are kept under their own names.
	Fields map[string]string `json:"fields,omitempty"`
	// Identity is the contact field that identifies the submitter (default "email").
	Identity string `json:"identity,omitempty"`
	// List, when set, subscribes the submitter; Tags are added.
	List string   `json:"list,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

// PutForm saves a form definition; created says it is new.
func PutForm(ctx context.Context, db DB, f Form) (created bool, err error) {
	err = db.QueryRow(ctx, `INSERT INTO forms (id, definition) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET definition = $2, updated_at = now() RETURNING (xmax = 0)`, f.ID, f).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("save form %s: %w", f.ID, err)
	}
	return created, nil
}

// FormByID reads a form definition.
func FormByID(ctx context.Context, db DB, id string) (Form, error) {
	var f Form
	err := db.QueryRow(ctx, `SELECT definition FROM forms WHERE id = $1`, id).Scan(&f)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, fmt.Errorf("form %q: %w", id, ErrNotFound)
	}
	return f, err
}

// SubmitForm records a submission in one transaction: the contact with its fields, the
// form_submitted event, and the form's list subscription and tags (with their events).
func SubmitForm(ctx context.Context, db DB, f Form, externalID string, fields map[string]any, dedupeKey string, at time.Time) (bool, error) {
	var inserted bool
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		props := map[string]any{"form": f.ID}
		for k, v := range fields {
			props[k] = v
		}
		id, ok, err := recordEvent(ctx, tx, EventInput{ExternalID: externalID, Traits: fields, Name: "form_submitted",
			Properties: props, Source: "form:" + f.ID, DedupeKey: dedupeKey, OccurredAt: at})
		if err != nil || !ok {
			return err
		}
		inserted = true
		var contactID int64
		if err := tx.QueryRow(ctx, `SELECT contact_id FROM events WHERE id = $1`, id).Scan(&contactID); err != nil {
			return err
		}
		key := fmt.Sprintf("form:%s:%d", f.ID, id)
		if f.List != "" {
			ct, err := tx.Exec(ctx, `INSERT INTO list_subscriptions (contact_id, list, status) VALUES ($1, $2, 'subscribed')
				ON CONFLICT (contact_id, list) DO UPDATE SET status = 'subscribed', changed_at = now() WHERE list_subscriptions.status <> 'subscribed'`, contactID, f.List)
			if err != nil {
				return fmt.Errorf("subscribe: %w", err)
			}
			if ct.RowsAffected() > 0 {
				if err := appendOwn(ctx, tx, contactID, "list_subscribed", map[string]any{"list": f.List}, key+"/list", at); err != nil {
					return err
				}
			}
		}
		for _, tag := range f.Tags {
			ct, err := tx.Exec(ctx, `INSERT INTO contact_tags (contact_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING`, contactID, tag)
			if err != nil {
				return fmt.Errorf("tag: %w", err)
			}
			if ct.RowsAffected() > 0 {
				if err := appendOwn(ctx, tx, contactID, "tag_added", map[string]any{"tag": tag}, key+"/tag/"+tag, at); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return inserted, err
}
