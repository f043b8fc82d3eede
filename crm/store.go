// Package crm is Cairn's CRM store on PostgreSQL: contacts, the event log, tags, the action
// ledger, the email outbox and journey versions. SQL lives here and nowhere else.
package crm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cairnhq/cairn/journey"
)

// ErrNotFound is returned when the row asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrNoEmail means a send was asked for a contact without an email address.
var ErrNoEmail = errors.New("contact has no email address")

// EventsChannel is the LISTEN/NOTIFY channel a new event is announced on.
const EventsChannel = "cairn_events"

// DB is what both a pool and a transaction offer. Every store function takes one, so a caller
// composes several inside one transaction by passing the transaction, and a function that
// needs a transaction of its own begins one on whatever it was given (a savepoint inside a
// transaction).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// WithTx runs fn in a transaction that is committed when fn returns nil and rolled back
// otherwise (including on panic).
func WithTx(ctx context.Context, db DB, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, fn)
}

// Contact is a person Cairn knows.
type Contact struct {
	ID         int64  `json:"id"`
	ExternalID string `json:"external_id"`
	Email      string `json:"email,omitempty"`
	// The profile columns: filled from traits (which win) and from what sending systems
	// observed (Segment's context), so segments on them need not read traits.
	Phone      string         `json:"phone,omitempty"`
	FirstName  string         `json:"first_name,omitempty"`
	LastName   string         `json:"last_name,omitempty"`
	Timezone   string         `json:"timezone,omitempty"`
	Country    string         `json:"country,omitempty"`
	Region     string         `json:"region,omitempty"`
	City       string         `json:"city,omitempty"`
	DeviceType string         `json:"device_type,omitempty"`
	Traits     map[string]any `json:"traits"`
	Tags       []string       `json:"tags"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// EventInput is an event to record. DedupeKey, when set, makes a repeat a no-op.
type EventInput struct {
	// AliasOf, on an alias event, is the previous id: its contact takes ExternalID when no
	// contact has that id yet.
	AliasOf    string
	ExternalID string
	Traits     map[string]any // merged into the contact's traits; "email" also sets Email
	Name       string
	Properties map[string]any
	Source     string
	DedupeKey  string
	OccurredAt time.Time
	// Observed is what the sending system saw about the contact along with the event; it
	// fills profile columns the traits say nothing about.
	Observed Observed
}

// Observed carries Segment's context: location, device and time zone. Empty means unknown,
// and an unknown value never blanks a stored one.
type Observed struct {
	Country    string
	Region     string
	City       string
	DeviceType string
	Timezone   string
}

// Event is a recorded event.
type Event struct {
	ID         int64          `json:"id"`
	ContactID  int64          `json:"contact_id"`
	ExternalID string         `json:"external_id,omitempty"`
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties"`
	Source     string         `json:"source"`
	OccurredAt time.Time      `json:"occurred_at"`
}

// upsertContactSQL merges traits and takes observed values ($4..$8: country, region, city,
// device type, time zone) where given; the contacts_profile trigger then lets traits win.
const upsertContactSQL = `
INSERT INTO contacts (external_id, email, traits, country, region, city, device_type, timezone)
VALUES ($1, NULLIF($2, ''), $3, NULLIF(btrim($4), ''), NULLIF(btrim($5), ''), NULLIF(btrim($6), ''), NULLIF(btrim($7), ''), NULLIF(btrim($8), ''))
ON CONFLICT (external_id) DO UPDATE
SET email = COALESCE(NULLIF($2, ''), contacts.email),
    traits = contacts.traits || $3,
    country = COALESCE(NULLIF(btrim($4), ''), contacts.country),
    region = COALESCE(NULLIF(btrim($5), ''), contacts.region),
    city = COALESCE(NULLIF(btrim($6), ''), contacts.city),
    device_type = COALESCE(NULLIF(btrim($7), ''), contacts.device_type),
    timezone = COALESCE(NULLIF(btrim($8), ''), contacts.timezone),
    updated_at = CASE WHEN $3 = '{}'::jsonb AND NULLIF($2, '') IS NULL THEN contacts.updated_at ELSE now() END
RETURNING id`

const insertEventSQL = `
INSERT INTO events (contact_id, name, properties, source, dedupe_key, occurred_at)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id`

// RecordEvent upserts the contact and appends the event in one transaction, then announces it
// to dispatchers. It reports inserted=false when the dedupe key was seen before; the contact is
// then left as it was, so a replayed delivery changes nothing.
func RecordEvent(ctx context.Context, db DB, in EventInput) (id int64, inserted bool, err error) {
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		id, inserted, err = recordEvent(ctx, tx, in)
		return err
	})
	return id, inserted, err
}

// RecordEvents records several events (a Segment batch) in one transaction: all or none.
func RecordEvents(ctx context.Context, db DB, events []EventInput) (inserted int, err error) {
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		inserted = 0
		for _, in := range events {
			_, ok, err := recordEvent(ctx, tx, in)
			if err != nil {
				return err
			}
			if ok {
				inserted++
			}
		}
		return nil
	})
	return inserted, err
}

func recordEvent(ctx context.Context, tx pgx.Tx, in EventInput) (int64, bool, error) {
	if in.Traits == nil {
		in.Traits = map[string]any{}
	}
	if in.Properties == nil {
		in.Properties = map[string]any{}
	}
	email, _ := in.Traits["email"].(string)
	// One spelling of the key for the lock, the check and the row.
	in.DedupeKey = strings.TrimSpace(in.DedupeKey)
	if in.DedupeKey != "" {
		// Deliveries of one message wait for each other here, so the second sees the first
		// committed and changes nothing, not even the contact.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, in.DedupeKey); err != nil {
			return 0, false, fmt.Errorf("lock dedupe key: %w", err)
		}
		var seen bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE dedupe_key = $1)`, in.DedupeKey).Scan(&seen); err != nil {
			return 0, false, fmt.Errorf("check dedupe key: %w", err)
		}
		if seen {
			return 0, false, nil
		}
	}
	if in.AliasOf != "" {
		// The anonymous visitor becomes the identified user, history and all, unless that
		// user already exists (merging two contacts is left to an operator).
		// previousId is usually an anonymousId, stored as "anon:" + id.
		if _, err := tx.Exec(ctx, `UPDATE contacts SET external_id = $2, updated_at = now()
			WHERE id = (SELECT id FROM contacts WHERE external_id IN ($1, 'anon:' || $1) ORDER BY external_id = $1 DESC LIMIT 1)
			  AND NOT EXISTS (SELECT 1 FROM contacts WHERE external_id = $2)`, in.AliasOf, in.ExternalID); err != nil {
			return 0, false, fmt.Errorf("alias contact: %w", err)
		}
	}
	var contactID int64
	o := in.Observed
	if err := tx.QueryRow(ctx, upsertContactSQL, in.ExternalID, email, in.Traits,
		o.Country, o.Region, o.City, o.DeviceType, o.Timezone).Scan(&contactID); err != nil {
		return 0, false, fmt.Errorf("upsert contact: %w", err)
	}
	var id int64
	err := tx.QueryRow(ctx, insertEventSQL, contactID, in.Name, in.Properties, in.Source, in.DedupeKey, in.OccurredAt).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("insert event: %w", err)
	}
	if err := recorded(ctx, tx, contactID, id, in.Name, in.Properties, in.OccurredAt); err != nil {
		return 0, false, err
	}
	_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, EventsChannel)
	return id, true, err
}

// recorded applies what a newly recorded event changes besides the log (scores, orders,
// carts), in its transaction; every path that records events calls it exactly once per event.
func recorded(ctx context.Context, db DB, contactID, eventID int64, name string, props map[string]any, at time.Time) error {
	if err := applyRules(ctx, db, contactID, name, props, at); err != nil {
		return err
	}
	return recordCommerce(ctx, db, contactID, eventID, name, props, at)
}

// ContactByExternalID returns the contact with its tags.
func ContactByExternalID(ctx context.Context, db DB, externalID string) (*Contact, error) {
	var id int64
	err := db.QueryRow(ctx, `SELECT id FROM contacts WHERE external_id = $1`, externalID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find contact: %w", err)
	}
	return ContactByID(ctx, db, id)
}

// Contact returns the contact with its tags.
func ContactByID(ctx context.Context, db DB, id int64) (*Contact, error) {
	c := &Contact{}
	var email *string
	err := db.QueryRow(ctx, `
		SELECT id, external_id, email, traits, created_at, updated_at,
		       COALESCE((SELECT array_agg(tag ORDER BY tag) FROM contact_tags WHERE contact_id = c.id), '{}'),
		       COALESCE(phone, ''), COALESCE(first_name, ''), COALESCE(last_name, ''), COALESCE(timezone, ''),
		       COALESCE(country, ''), COALESCE(region, ''), COALESCE(city, ''), COALESCE(device_type, '')
		FROM contacts c WHERE id = $1`, id).
		Scan(&c.ID, &c.ExternalID, &email, &c.Traits, &c.CreatedAt, &c.UpdatedAt, &c.Tags,
			&c.Phone, &c.FirstName, &c.LastName, &c.Timezone, &c.Country, &c.Region, &c.City, &c.DeviceType)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read contact %d: %w", id, err)
	}
	if email != nil {
		c.Email = *email
	}
	return c, nil
}

// ActionResult is what a ledgered action did the first time it ran.
type ActionResult struct {
	// Replayed is true when this call found the action already done and changed nothing.
	Replayed bool           `json:"-"`
	Detail   map[string]any `json:"detail,omitempty"`
}

// ledger runs effect once per idempotency key, in the transaction that records the key.
// A second call with the same key returns the first call's result and runs nothing.
func ledger(ctx context.Context, db DB, key, action string, contactID int64, effect func(tx pgx.Tx) (map[string]any, error)) (ActionResult, error) {
	var res ActionResult
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contacts WHERE id = $1)`, contactID).Scan(&exists); err != nil {
			return fmt.Errorf("check contact: %w", err)
		}
		if !exists {
			return fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO action_ledger (idempotency_key, action, contact_id) VALUES ($1, $2, $3)
			ON CONFLICT (idempotency_key) DO NOTHING`, key, action, contactID)
		if err != nil {
			return fmt.Errorf("ledger %s: %w", action, err)
		}
		if tag.RowsAffected() == 0 {
			res.Replayed = true
			return tx.QueryRow(ctx, `SELECT result FROM action_ledger WHERE idempotency_key = $1`, key).Scan(&res.Detail)
		}
		detail, err := effect(tx)
		if err != nil {
			return err
		}
		// Return what a retry will read back from the ledger, so both look the same.
		return tx.QueryRow(ctx, `UPDATE action_ledger SET result = $2 WHERE idempotency_key = $1 RETURNING result`, key, detail).Scan(&res.Detail)
	})
	return res, err
}

// appendEvent records a change made by Cairn itself, so that the dispatcher can start the
// journeys it triggers (a journey adding tag "vip" starts the one triggered by tag_added).
func appendEvent(ctx context.Context, db DB, contactID int64, name string, props map[string]any, key string) error {
	now := time.Now()
	var id int64
	err := db.QueryRow(ctx, insertEventSQL, contactID, name, props, "cairn", key, now).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows): // the key was seen: recorded before
	case err != nil:
		return fmt.Errorf("append %s event: %w", name, err)
	default:
		if err := recorded(ctx, db, contactID, id, name, props, now); err != nil {
			return err
		}
	}
	_, err = db.Exec(ctx, `SELECT pg_notify($1, '')`, EventsChannel)
	return err
}

// AddTag tags the contact once per idempotency key and records a tag_added event when the
// tag is new.
func AddTag(ctx context.Context, db DB, key string, contactID int64, tag string) (ActionResult, error) {
	return ledger(ctx, db, key, "add_tag", contactID, func(tx pgx.Tx) (map[string]any, error) {
		ct, err := tx.Exec(ctx, `INSERT INTO contact_tags (contact_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING`, contactID, tag)
		if err != nil {
			return nil, fmt.Errorf("add tag: %w", err)
		}
		added := ct.RowsAffected() == 1
		if added {
			if _, err := tx.Exec(ctx, `INSERT INTO tag_changes (contact_id, tag, change) VALUES ($1, $2, 'added')`, contactID, tag); err != nil {
				return nil, fmt.Errorf("record tag change: %w", err)
			}
			if err := appendEvent(ctx, tx, contactID, "tag_added", map[string]any{"tag": tag}, key); err != nil {
				return nil, err
			}
		}
		return map[string]any{"tag": tag, "added": added}, nil
	})
}

// JourneyVersion is one immutable version of a journey.
type JourneyVersion struct {
	JourneyID  string          `json:"id"`
	Version    int             `json:"version"`
	Paused     bool            `json:"paused"`
	Definition journey.Journey `json:"definition"`
	CreatedAt  time.Time       `json:"created_at"`
}

// ApplyJourney stores j as a new version unless the newest version is identical;
// created says which happened.
func ApplyJourney(ctx context.Context, db DB, j *journey.Journey, document string) (v JourneyVersion, created bool, err error) {
	def, err := json.Marshal(j)
	if err != nil {
		return v, false, fmt.Errorf("encode journey: %w", err)
	}
	sum := sha256.Sum256(def)
	digest := hex.EncodeToString(sum[:])
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO journeys (id) VALUES ($1) ON CONFLICT DO NOTHING`, j.ID); err != nil {
			return fmt.Errorf("insert journey: %w", err)
		}
		// Lock the journey row so two concurrent applies cannot both take version n+1.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM journeys WHERE id = $1 FOR UPDATE`, j.ID); err != nil {
			return fmt.Errorf("lock journey: %w", err)
		}
		var latest int
		var latestDigest string
		err := tx.QueryRow(ctx, `SELECT version, digest FROM journey_versions WHERE journey_id = $1 ORDER BY version DESC LIMIT 1`, j.ID).Scan(&latest, &latestDigest)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read latest version: %w", err)
		}
		if latestDigest == digest {
			v.Version = latest
			return nil
		}
		v.Version = latest + 1
		created = true
		_, err = tx.Exec(ctx, `INSERT INTO journey_versions (journey_id, version, definition, digest, document, interests, trigger_events)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			j.ID, v.Version, def, digest, document, j.Interests(), j.TriggerEvents())
		if err != nil {
			return fmt.Errorf("insert journey version: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE journeys SET updated_at = now() WHERE id = $1`, j.ID)
		return err
	})
	if err != nil {
		return v, false, err
	}
	got, err := JourneyByID(ctx, db, j.ID, v.Version)
	if err != nil {
		return v, false, err
	}
	return *got, created, nil
}

const journeyColumns = `v.journey_id, v.version, j.paused, v.definition, v.created_at`

func scanJourney(row pgx.Row) (*JourneyVersion, error) {
	v := &JourneyVersion{}
	var def []byte
	if err := row.Scan(&v.JourneyID, &v.Version, &v.Paused, &def, &v.CreatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(def, &v.Definition); err != nil {
		return nil, fmt.Errorf("decode stored journey %s v%d: %w", v.JourneyID, v.Version, err)
	}
	return v, nil
}

// Journey returns one version of a journey; version 0 means the newest.
func JourneyByID(ctx context.Context, db DB, id string, version int) (*JourneyVersion, error) {
	v, err := scanJourney(db.QueryRow(ctx, `SELECT `+journeyColumns+`
		FROM journey_versions v JOIN journeys j ON j.id = v.journey_id
		WHERE v.journey_id = $1 AND ($2 = 0 OR v.version = $2)
		ORDER BY v.version DESC LIMIT 1`, id, version))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("journey %q: %w", id, ErrNotFound)
	}
	return v, err
}

// TriggeredBy returns the newest version of every unpaused journey with a trigger listening
// for the event name; the caller applies the triggers' filters.
func TriggeredBy(ctx context.Context, db DB, eventName string) ([]JourneyVersion, error) {
	rows, err := db.Query(ctx, `SELECT `+journeyColumns+`
		FROM journeys j
		JOIN LATERAL (SELECT * FROM journey_versions WHERE journey_id = j.id ORDER BY version DESC LIMIT 1) v ON true
		WHERE NOT j.paused AND $1 = ANY (v.trigger_events)
		ORDER BY j.id`, eventName)
	if err != nil {
		return nil, fmt.Errorf("match triggers: %w", err)
	}
	defer rows.Close()
	var out []JourneyVersion
	for rows.Next() {
		v, err := scanJourney(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

// ClaimEvents locks up to limit undispatched events, oldest first, skipping rows another
// dispatcher holds; they stay locked until tx ends.
func ClaimEvents(ctx context.Context, tx pgx.Tx, limit int) ([]Event, error) {
	rows, err := tx.Query(ctx, `SELECT e.id, e.contact_id, c.external_id, e.name, e.properties, e.source, e.occurred_at
		FROM events e JOIN contacts c ON c.id = e.contact_id
		WHERE e.dispatched_at IS NULL ORDER BY e.id LIMIT $1 FOR UPDATE OF e SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, &e.ContactID, &e.ExternalID, &e.Name, &e.Properties, &e.Source, &e.OccurredAt); err != nil {
			return nil, fmt.Errorf("claim events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// MarkDispatched records that Temporal accepted everything the event caused.
func MarkDispatched(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := tx.Exec(ctx, `UPDATE events SET dispatched_at = now() WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("mark event %d dispatched: %w", id, err)
	}
	return nil
}

// Enroll records the run a SignalWithStart reached. A run ID other than the stored one means
// a new run (a new entry, perhaps on a newer version); the same one means the event only
// reached the open run.
func Enroll(ctx context.Context, db DB, journeyID string, contactID int64, version int, workflowID, runID string) error {
	_, err := db.Exec(ctx, `INSERT INTO enrollments (journey_id, contact_id, version, workflow_id, run_id)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (journey_id, contact_id) DO UPDATE
		SET version = $3, workflow_id = $4, run_id = $5, entered_at = now(), ended_at = NULL
		WHERE enrollments.run_id <> $5 OR enrollments.ended_at IS NOT NULL`,
		journeyID, contactID, version, workflowID, runID)
	if err != nil {
		return fmt.Errorf("enroll contact %d in %s: %w", contactID, journeyID, err)
	}
	return nil
}

// Enrollment is an open run of a contact.
type Enrollment struct {
	JourneyID  string
	WorkflowID string
	RunID      string
}

// Interested lists the contact's open runs whose journey version wants events named name,
// leaving out the journeys in skip (already reached through their trigger).
func Interested(ctx context.Context, db DB, contactID int64, name string, skip []string) ([]Enrollment, error) {
	if skip == nil {
		skip = []string{}
	}
	rows, err := db.Query(ctx, `SELECT en.journey_id, en.workflow_id, en.run_id
		FROM enrollments en
		JOIN journey_versions v ON v.journey_id = en.journey_id AND v.version = en.version
		WHERE en.contact_id = $1 AND en.ended_at IS NULL AND $2 = ANY (v.interests) AND en.journey_id <> ALL ($3)
		ORDER BY en.journey_id`, contactID, name, skip)
	if err != nil {
		return nil, fmt.Errorf("route event: %w", err)
	}
	defer rows.Close()
	var out []Enrollment
	for rows.Next() {
		var e Enrollment
		if err := rows.Scan(&e.JourneyID, &e.WorkflowID, &e.RunID); err != nil {
			return nil, fmt.Errorf("route event: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// EndEnrollment closes the row of a run that turned out to be finished (at, or now if zero).
func EndEnrollment(ctx context.Context, db DB, journeyID string, contactID int64, runID string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	_, err := db.Exec(ctx, `UPDATE enrollments SET ended_at = $4 WHERE journey_id = $1 AND contact_id = $2 AND run_id = $3`, journeyID, contactID, runID, at)
	if err != nil {
		return fmt.Errorf("end enrollment: %w", err)
	}
	return nil
}

// EnrollmentRecord is a contact's last run of a journey.
type EnrollmentRecord struct {
	Version   int
	RunID     string
	EnteredAt time.Time
	EndedAt   *time.Time
}

// EnrollmentOf returns the contact's last run of the journey, or nil if it never entered.
func EnrollmentOf(ctx context.Context, db DB, journeyID string, contactID int64) (*EnrollmentRecord, error) {
	e := &EnrollmentRecord{}
	err := db.QueryRow(ctx, `SELECT version, run_id, entered_at, ended_at FROM enrollments WHERE journey_id = $1 AND contact_id = $2`,
		journeyID, contactID).Scan(&e.Version, &e.RunID, &e.EnteredAt, &e.EndedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read enrollment: %w", err)
	}
	return e, nil
}

// SetPaused pauses (no new entries) or resumes a journey; runs in flight go on either way.
func SetPaused(ctx context.Context, db DB, id string, paused bool) error {
	ct, err := db.Exec(ctx, `UPDATE journeys SET paused = $2, updated_at = now() WHERE id = $1`, id, paused)
	if err != nil {
		return fmt.Errorf("pause journey: %w", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("journey %q: %w", id, ErrNotFound)
	}
	return nil
}
