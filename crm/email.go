package crm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/email"
)

// Errors of email sends that no retry will fix.
var (
	ErrNoTemplate   = errors.New("unknown email template")
	ErrUnsubscribed = errors.New("contact has unsubscribed")
)

// PutTemplate stores a template (checked by the caller); created says it is new.
func PutTemplate(ctx context.Context, db DB, t email.Template) (created bool, err error) {
	err = db.QueryRow(ctx, `INSERT INTO email_templates (id, subject, html, text) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET subject = $2, html = $3, text = $4, updated_at = now()
		RETURNING (xmax = 0)`, t.ID, t.Subject, t.HTML, t.Text).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("save template %s: %w", t.ID, err)
	}
	return created, nil
}

// Template reads a template.
func TemplateByID(ctx context.Context, db DB, id string) (email.Template, error) {
	t := email.Template{ID: id}
	err := db.QueryRow(ctx, `SELECT subject, html, text FROM email_templates WHERE id = $1`, id).Scan(&t.Subject, &t.HTML, &t.Text)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("template %q: %w", id, ErrNoTemplate)
	}
	if err != nil {
		return t, fmt.Errorf("read template %s: %w", id, err)
	}
	return t, nil
}

// EmailSend is a send claimed under an idempotency key.
type EmailSend struct {
	// Done means an earlier attempt sent it: Result is what it returned, and nothing is to be sent.
	Done      bool
	Result    map[string]any
	MessageID int64
	To        string
	Template  email.Template
	Data      email.Data
	// Deferred, when set, means the send policy holds the send back: nothing was claimed.
	Deferred *Deferral
	// Conn is the claim's transaction while render runs: what render reads (the template's
	// context) it reads there, holding no second connection.
	Conn DB
}

// ClaimEmail prepares one send per key. The first call checks the contact (exists, has an
// address, has not unsubscribed) and the template, and records the message and the ledger row
// as 'sending' before anything leaves; later calls return the same message, or Done once
// CompleteEmail ran. render runs inside the transaction: a template that fails to render
// leaves no row behind. check, when set, is the send's policy: the first call takes the
// send's place among those its caps count, or returns it Deferred, claiming nothing.
func ClaimEmail(ctx context.Context, db DB, key string, contactID int64, templateID string, check *SendCheck, render func(*EmailSend) error) (*EmailSend, error) {
	es := &EmailSend{}
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state, result FROM action_ledger WHERE idempotency_key = $1`, key).Scan(&state, &es.Result)
		switch {
		case err == nil && state == "done":
			es.Done = true
			return nil
		case err == nil:
			// An earlier attempt may or may not have reached the SMTP server: send again, as
			// the same message (same Message-ID).
			if err := tx.QueryRow(ctx, `SELECT id, to_address FROM email_messages WHERE idempotency_key = $1`, key).Scan(&es.MessageID, &es.To); err != nil {
				return fmt.Errorf("read message being sent: %w", err)
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read ledger: %w", err)
		}
		var unsub bool
		es.Data, unsub, err = contactData(ctx, tx, contactID)
		if err != nil {
			return err
		}
		if unsub {
			return fmt.Errorf("contact %d: %w", contactID, ErrUnsubscribed)
		}
		if es.Data.Contact.Email == "" {
			return fmt.Errorf("contact %d: %w", contactID, ErrNoEmail)
		}
		to := &es.Data.Contact.Email
		if es.Template, err = templateTx(ctx, tx, templateID); err != nil {
			return err
		}
		if es.MessageID == 0 {
			if es.Deferred, err = reserve(ctx, tx, key, contactID, check); err != nil || es.Deferred != nil {
				return err
			}
			es.To = *to
			if _, err := tx.Exec(ctx, `INSERT INTO action_ledger (idempotency_key, action, contact_id, state) VALUES ($1, 'send_email', $2, 'sending')`, key, contactID); err != nil {
				return fmt.Errorf("ledger send_email: %w", err)
			}
			if err := tx.QueryRow(ctx, `INSERT INTO email_messages (idempotency_key, contact_id, template, to_address, status)
				VALUES ($1, $2, $3, $4, 'sending') RETURNING id`, key, contactID, templateID, *to).Scan(&es.MessageID); err != nil {
				return fmt.Errorf("record message: %w", err)
			}
		}
		es.Conn = tx
		defer func() { es.Conn = nil }()
		return render(es)
	})
	return es, err
}

func templateTx(ctx context.Context, tx DB, id string) (email.Template, error) {
	t := email.Template{ID: id}
	err := tx.QueryRow(ctx, `SELECT subject, html, text FROM email_templates WHERE id = $1`, id).Scan(&t.Subject, &t.HTML, &t.Text)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("template %q: %w", id, ErrNoTemplate)
	}
	return t, err
}

// CompleteEmail records that the message was handed to the SMTP server, and the email_sent event.
func CompleteEmail(ctx context.Context, db DB, key string, es *EmailSend, subject, messageID string, at time.Time) (map[string]any, error) {
	var result map[string]any
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		// No address: the result becomes a run's activity result, which names the message only.
		detail := map[string]any{"message_id": es.MessageID, "template": es.Template.ID}
		if err := tx.QueryRow(ctx, `UPDATE action_ledger SET state = 'done', result = $2 WHERE idempotency_key = $1 AND state = 'sending' RETURNING result`,
			key, detail).Scan(&result); err != nil {
			return fmt.Errorf("complete ledger: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE email_messages SET status = 'sent', subject = $2, message_id = $3, sent_at = now() WHERE id = $1`,
			es.MessageID, subject, messageID); err != nil {
			return fmt.Errorf("complete message: %w", err)
		}
		return appendOwn(ctx, tx, es.Data.Contact.ID, "email_sent", map[string]any{"template": es.Template.ID, "message_id": es.MessageID}, key, at)
	})
	return result, err
}

// RecordEngagement records email_opened or email_clicked for a message, after checking that the
// message exists and belongs to the contact the token names. A repeat within window (a mail
// client fetching the pixel again, a double click, a link scanner) counts once: the event's
// dedupe key names the message, the kind, the link and the window of the clock that at falls
// in. window <= 0 counts every repeat.
func RecordEngagement(ctx context.Context, db DB, c email.Claims, at time.Time, window time.Duration) error {
	var template string
	err := db.QueryRow(ctx, `SELECT template FROM email_messages WHERE id = $1 AND contact_id = $2`, c.MessageID, c.ContactID).Scan(&template)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("message %d: %w", c.MessageID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	name, props := "email_opened", map[string]any{"template": template, "message_id": c.MessageID}
	if c.Kind == email.KindClick {
		name, props["link"] = "email_clicked", c.URL
	}
	key := ""
	if window > 0 {
		// The link is hashed: a long URL must not make a key the unique index cannot hold.
		link := sha256.Sum256([]byte(c.URL))
		key = fmt.Sprintf("engagement:%s:%d:%x:%d", c.Kind, c.MessageID, link[:8], at.UnixNano()/int64(window))
	}
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		_, _, err := appendEvent(ctx, tx, NewEvent{ContactID: c.ContactID, Name: name, Properties: props, Source: SourceTracking,
			DedupeKey: key, OccurredAt: at})
		return err
	})
}

// Unsubscribe stops marketing email to the contact, tags it "unsubscribed" (journeys exit on
// it) and records the event, once.
func Unsubscribe(ctx context.Context, db DB, c email.Claims, at time.Time) error {
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		var template string
		err := tx.QueryRow(ctx, `SELECT template FROM email_messages WHERE id = $1 AND contact_id = $2`, c.MessageID, c.ContactID).Scan(&template)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message %d: %w", c.MessageID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		ct, err := tx.Exec(ctx, `UPDATE contacts SET unsubscribed_at = now(), updated_at = now() WHERE id = $1 AND unsubscribed_at IS NULL`, c.ContactID)
		if err != nil || ct.RowsAffected() == 0 {
			return err
		}
		key := fmt.Sprintf("unsubscribe:%d", c.ContactID)
		if err := appendOwn(ctx, tx, c.ContactID, "unsubscribed", map[string]any{"template": template, "message_id": c.MessageID}, key, at); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO contact_tags (contact_id, tag) VALUES ($1, 'unsubscribed') ON CONFLICT DO NOTHING`, c.ContactID); err != nil {
			return fmt.Errorf("tag unsubscribed: %w", err)
		}
		return appendOwn(ctx, tx, c.ContactID, "tag_added", map[string]any{"tag": "unsubscribed"}, key+"/tag", at)
	})
}

// contactData reads what templates and deliveries see of a contact, and whether it unsubscribed.
func contactData(ctx context.Context, db DB, contactID int64) (email.Data, bool, error) {
	var d email.Data
	var to *string
	var unsub bool
	c := email.Contact{ID: contactID}
	err := db.QueryRow(ctx, `SELECT external_id, email, unsubscribed_at IS NOT NULL, traits,
			score::float8
		FROM contacts c WHERE id = $1`, contactID).Scan(&c.ExternalID, &to, &unsub, &d.Fields, &d.Score)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
	}
	if err != nil {
		return d, false, fmt.Errorf("read contact: %w", err)
	}
	if to != nil {
		c.Email = *to
	}
	d.Contact = c
	return d, unsub, nil
}

// External is a call to an outside provider claimed under an idempotency key.
type External struct {
	// Done means an earlier attempt completed the call; Result is what it returned.
	Done         bool
	Result       map[string]any
	Data         email.Data
	Unsubscribed bool
	// Deferred, when set, means the send policy holds the call back: nothing was claimed.
	Deferred *Deferral
}

// ClaimExternal records the ledger row as 'sending' before a provider call (or finds it) and
// returns the contact's data for the call. check, when set, is the send's policy, as for
// ClaimEmail: a send it holds back is returned Deferred, with nothing claimed.
func ClaimExternal(ctx context.Context, db DB, key, action string, contactID int64, check *SendCheck) (*External, error) {
	ex := &External{}
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state, result FROM action_ledger WHERE idempotency_key = $1`, key).Scan(&state, &ex.Result)
		if err == nil && state == "done" {
			ex.Done = true
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read ledger: %w", err)
		}
		if ex.Data, ex.Unsubscribed, err = contactData(ctx, tx, contactID); err != nil {
			return err
		}
		if state == "" { // no claim yet: the policy decides whether the call may go now
			if ex.Deferred, err = reserve(ctx, tx, key, contactID, check); err != nil || ex.Deferred != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO action_ledger (idempotency_key, action, contact_id, state) VALUES ($1, $2, $3, 'sending')
			ON CONFLICT (idempotency_key) DO NOTHING`, key, action, contactID)
		return err
	})
	return ex, err
}

// ReleaseExternal forgets a claim whose call certainly did not happen (the provider refused
// it), so the step can run again once the cause is fixed, and gives back its place among the
// sends caps count.
func ReleaseExternal(ctx context.Context, db DB, key string) error {
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM action_ledger WHERE idempotency_key = $1 AND state = 'sending'`, key); err != nil {
			return fmt.Errorf("release claim: %w", err)
		}
		return ReleaseSend(ctx, tx, key)
	})
}

// CompleteExternal marks the call done with its result and records its event.
func CompleteExternal(ctx context.Context, db DB, act Action, event string, result map[string]any) (map[string]any, error) {
	key, contactID := act.Key, act.ContactID
	var out map[string]any
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `UPDATE action_ledger SET state = 'done', result = $2 WHERE idempotency_key = $1 RETURNING result`,
			key, result).Scan(&out); err != nil {
			return fmt.Errorf("complete ledger: %w", err)
		}
		return appendOwn(ctx, tx, contactID, event, result, key, act.At)
	})
	return out, err
}
