package crm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairnhq/cairn/journey"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// EventsChannel is the LISTEN/NOTIFY channel a new event is announced on.
const EventsChannel = "cairn_events"

// Event sources: who recorded an event. Ingested events carry the ingestion path's own
// source ("segment", "form", "crm", ...); Cairn's own facts carry SourceCairn.
const (
	// SourceCairn marks an event Cairn recorded itself: a journey action, a goal, a run's end,
	// a segment entry, a cart watch.
	SourceCairn = "cairn"
	// SourceScheduler marks date_reached events of the hourly date scan.
	SourceScheduler = "scheduler"
	// SourceCRM marks deal stages another CRM reported (PUT /v1/deals/{id}).
	SourceCRM = "crm"
	// SourceTracking marks opens, clicks and unsubscribes from signed email links.
	SourceTracking = "tracking"
	// SourceAPI marks starts asked for by the admin API.
	SourceAPI = "api"
)

// ErrReservedEvent refuses an event that uses one of Cairn's own names from a source that may
// not record it (a write key, a signing source).
var ErrReservedEvent = errors.New("reserved event name")

// ownSource says whether a source is one of Cairn's own writers, which alone may record its
// reserved names: journey actions and Cairn's detections, the date scan, signed email links,
// the admin API, a deal another CRM reports through its endpoint, and forms (form_submitted).
func ownSource(source string) bool {
	switch source {
	case SourceCairn, SourceScheduler, SourceTracking, SourceAPI, SourceCRM:
		return true
	}
	return strings.HasPrefix(source, "form:")
}

// Trusted says whether an event may mean what its name says: an event with a reserved name
// counts only from Cairn's own writers (rows recorded before ingestion refused such names
// are ignored by dispatch).
func Trusted(name, source string) bool { return !journey.Reserved(name) || ownSource(source) }

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

func (o Observed) empty() bool { return o == Observed{} }

// Event is a recorded event.
type Event struct {
	ID         int64          `json:"id"`
	ContactID  int64          `json:"contact_id"`
	ExternalID string         `json:"external_id,omitempty"`
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties"`
	Source     string         `json:"source"`
	OccurredAt time.Time      `json:"occurred_at"`
	// Changed lists the contact fields this event changed (traits and profile columns).
	Changed []string `json:"changed,omitempty"`
	// Aliases are the contact's other ids (anonymous ids before an alias), as dispatch reads them.
	Aliases []string `json:"aliases,omitempty"`
}

// NewEvent is one row for the event log, whoever writes it: ingestion, a journey action, the
// date scan, a segment re-check. appendEvent is the only way in.
type NewEvent struct {
	ContactID  int64
	Name       string
	Properties map[string]any
	Source     string
	// DedupeKey makes a repeat a no-op (empty: none).
	DedupeKey  string
	OccurredAt time.Time
	// Changed lists the contact fields the event changed.
	Changed []string
}

// In the same statement (one round trip, where appending an event is the hot path), it says
// whether any scoring rule or object source names the event, so the common event that has
// neither costs no further statement, and it announces the event to dispatchers (delivered at
// commit, once per transaction however many events it holds). Nothing is announced for a
// key seen before: no row comes back.
const insertEventSQL = `
WITH ins AS (
	INSERT INTO events (contact_id, name, properties, source, dedupe_key, occurred_at, changed, traceparent)
	VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, NULLIF($8, ''))
	ON CONFLICT (dedupe_key) DO NOTHING
	RETURNING id)
SELECT ins.id,
	EXISTS (SELECT 1 FROM scoring_rules WHERE event = $2),
	EXISTS (SELECT 1 FROM object_sources WHERE event = $2),
	pg_notify($9, '') IS NULL
FROM ins`

// appendEvent records an event, applies what it changes besides the log (scoring rules,
// orders and carts) in the same transaction, and announces it to dispatchers. It is the one
// path into the events table, so a scoring rule or the commerce bookkeeping sees an event
// whoever recorded it. inserted is false when the dedupe key was seen before.
func appendEvent(ctx context.Context, db DB, e NewEvent) (id int64, inserted bool, err error) {
	if e.Properties == nil {
		e.Properties = map[string]any{}
	}
	if e.Changed == nil {
		e.Changed = []string{}
	}
	if e.OccurredAt.IsZero() {
		return 0, false, fmt.Errorf("append %s event: no time given", e.Name)
	}
	if !Trusted(e.Name, e.Source) {
		return 0, false, fmt.Errorf("%w: %q is recorded by Cairn itself, not by %s", ErrReservedEvent, e.Name, e.Source)
	}
	var scored, sourced bool
	err = db.QueryRow(ctx, insertEventSQL, e.ContactID, e.Name, e.Properties, e.Source, e.DedupeKey, e.OccurredAt, e.Changed,
		traceParent(ctx), EventsChannel).Scan(&id, &scored, &sourced, new(bool))
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil // the key was seen: recorded before
	}
	if err != nil {
		return 0, false, fmt.Errorf("append %s event: %w", e.Name, err)
	}
	if scored {
		if err := applyRules(ctx, db, e.ContactID, e.Name, e.Properties, e.OccurredAt); err != nil {
			return 0, false, err
		}
	}
	if err := recordCommerce(ctx, db, e.ContactID, id, e.Name, e.Properties, e.OccurredAt); err != nil {
		return 0, false, err
	}
	if sourced {
		if err := recordObjects(ctx, db, id, e.ContactID, e.Name, e.Properties, e.OccurredAt); err != nil {
			return 0, false, err
		}
	}
	return id, true, nil
}

// traceParent is the W3C traceparent of the span recording an event (none when tracing is
// off): the event's dispatch continues that trace.
func traceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// RecordEvent upserts the contact and appends the event in one transaction. It reports
// inserted=false when the dedupe key was seen before; the contact is then left as it was, so
// a replayed delivery changes nothing.
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
		for i, in := range events {
			_, ok, err := recordEvent(ctx, tx, in)
			var re *RecordError
			if errors.As(err, &re) {
				re.Index = i // which event of the batch
			}
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

// upsertContactSQL merges traits and takes observed values ($4..$8: country, region, city,
// device type, time zone) where given; the contacts_profile trigger then lets traits win.
// It returns the profile as stored, to tell which fields the call changed.
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
RETURNING id, ` + profileSelect

// profileSelect reads what a field condition can test besides traits: the profile columns.
const profileSelect = `email, phone, first_name, last_name, timezone, country, region, city, device_type`

// profileNames are the field names of profileSelect's columns, in order.
var profileNames = []string{"email", "phone", "first_name", "last_name", "timezone", "country", "region", "city", "device_type"}

type profileRow [9]*string

func (p *profileRow) targets() []any {
	out := make([]any, len(p))
	for i := range p {
		out[i] = &p[i]
	}
	return out
}

func recordEvent(ctx context.Context, tx pgx.Tx, in EventInput) (int64, bool, error) {
	if in.Traits == nil {
		in.Traits = map[string]any{}
	}
	email, _ := in.Traits["email"].(string)
	// One spelling of the key for the lock, the check and the row.
	in.DedupeKey = strings.TrimSpace(in.DedupeKey)
	// The statements before the contact is written go in one round trip, run in this order:
	// the dedupe key's lock (deliveries of one message wait for each other here, so the second
	// sees the first committed and changes nothing, not even the contact), then, in a snapshot
	// taken with the lock held, whether the key was seen, and the contact an id the contact
	// was known by before an alias reaches.
	var seen bool
	var current string
	b := &pgx.Batch{}
	if in.DedupeKey != "" {
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, in.DedupeKey).Exec(func(pgconn.CommandTag) error { return nil })
		b.Queue(`SELECT EXISTS (SELECT 1 FROM events WHERE dedupe_key = $1)`, in.DedupeKey).QueryRow(func(r pgx.Row) error {
			if err := r.Scan(&seen); err != nil {
				return fmt.Errorf("check dedupe key: %w", err)
			}
			return nil
		})
	}
	if in.AliasOf == "" {
		b.Queue(`SELECT c.external_id FROM contact_aliases a JOIN contacts c ON c.id = a.contact_id WHERE a.alias = $1`,
			in.ExternalID).QueryRow(func(r pgx.Row) error {
			if err := r.Scan(&current); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("resolve contact id: %w", err)
			}
			return nil
		})
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return 0, false, fmt.Errorf("record event: %w", err)
		}
	}
	if seen {
		return 0, false, nil
	}
	if in.AliasOf != "" {
		if err := alias(ctx, tx, in.AliasOf, in.ExternalID); err != nil {
			return 0, false, err
		}
	} else if current != "" {
		in.ExternalID = current
	}
	// What the call may change is read first, under the row lock the upsert takes anyway, so
	// the event can say which fields it changed. Calls without traits or context change none.
	touches := len(in.Traits) > 0 || email != "" || !in.Observed.empty()
	var before profileRow
	var beforeTraits map[string]any
	existed := false
	if touches {
		targets := append([]any{&beforeTraits}, before.targets()...)
		err := tx.QueryRow(ctx, `SELECT traits, `+profileSelect+` FROM contacts WHERE external_id = $1 FOR UPDATE`, in.ExternalID).Scan(targets...)
		switch {
		case err == nil:
			existed = true
		case !errors.Is(err, pgx.ErrNoRows):
			return 0, false, fmt.Errorf("read contact: %w", err)
		}
	}
	var contactID int64
	var after profileRow
	o := in.Observed
	if err := tx.QueryRow(ctx, upsertContactSQL, in.ExternalID, email, in.Traits,
		o.Country, o.Region, o.City, o.DeviceType, o.Timezone).Scan(append([]any{&contactID}, after.targets()...)...); err != nil {
		return 0, false, fmt.Errorf("upsert contact: %w", err)
	}
	var changed []string
	if touches {
		changed = changedFields(existed, beforeTraits, in.Traits, before, after)
	}
	return appendEvent(ctx, tx, NewEvent{ContactID: contactID, Name: in.Name, Properties: in.Properties,
		Source: in.Source, DedupeKey: in.DedupeKey, OccurredAt: in.OccurredAt, Changed: changed})
}

// changedFields names the traits and profile columns whose value the call changed, sorted.
func changedFields(existed bool, old, given map[string]any, before, after profileRow) []string {
	set := map[string]bool{}
	for k, v := range given {
		if prev, had := old[k]; !existed || !had || !jsonEqual(prev, v) {
			set[k] = true
		}
	}
	for i, name := range profileNames {
		b, a := before[i], after[i]
		if (b == nil) != (a == nil) || b != nil && *b != *a {
			set[name] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// alias makes the contact known as previous known as current: the anonymous visitor becomes
// the identified user, history and all, unless that user already exists (merging two contacts
// is left to an operator). Either way the previous id is kept as an alias of the user, so
// later events under it reach the user. previousId is usually an anonymousId, stored as
// "anon:" + id.
func alias(ctx context.Context, tx pgx.Tx, previous, current string) error {
	var prevID int64
	var old string
	err := tx.QueryRow(ctx, `SELECT id, external_id FROM contacts WHERE external_id IN ($1, 'anon:' || $1)
		ORDER BY external_id = $1 DESC LIMIT 1 FOR UPDATE`, previous).Scan(&prevID, &old)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		old = "anon:" + previous
	case err != nil:
		return fmt.Errorf("alias contact: %w", err)
	}
	if old == current {
		return nil
	}
	var userID int64
	err = tx.QueryRow(ctx, `SELECT id FROM contacts WHERE external_id = $1`, current).Scan(&userID)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && prevID != 0:
		if _, err := tx.Exec(ctx, `UPDATE contacts SET external_id = $2, updated_at = now() WHERE id = $1`, prevID, current); err != nil {
			return fmt.Errorf("alias contact: %w", err)
		}
		userID = prevID
	case errors.Is(err, pgx.ErrNoRows):
		// Neither is known yet: the user is created now.
		if userID, err = ensureContact(ctx, tx, current); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("alias contact: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO contact_aliases (alias, contact_id) VALUES ($1, $2)
		ON CONFLICT (alias) DO UPDATE SET contact_id = $2`, old, userID); err != nil {
		return fmt.Errorf("record alias: %w", err)
	}
	return nil
}

// appendOwn records a fact Cairn established itself (a tag a journey added, a goal met, a
// segment entered) at the given time: appendEvent with Cairn as the source.
func appendOwn(ctx context.Context, db DB, contactID int64, name string, props map[string]any, key string, at time.Time, changed ...string) error {
	_, _, err := appendEvent(ctx, db, NewEvent{ContactID: contactID, Name: name, Properties: props,
		Source: SourceCairn, DedupeKey: key, OccurredAt: at, Changed: changed})
	return err
}

// ensureContact returns the contact known by externalID (or by it as an alias), creating it
// when new.
func ensureContact(ctx context.Context, db DB, externalID string) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `SELECT contact_id FROM contact_aliases WHERE alias = $1`, externalID).Scan(&id)
	switch {
	case err == nil:
		return id, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("resolve contact id: %w", err)
	}
	err = db.QueryRow(ctx, `INSERT INTO contacts (external_id) VALUES ($1)
		ON CONFLICT (external_id) DO UPDATE SET external_id = EXCLUDED.external_id RETURNING id`, externalID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("upsert contact: %w", err)
	}
	return id, nil
}

// ContactEventsAfter lists the contact's events after the event id given, in order (a
// simulation hands them to its run as the dispatcher would).
func ContactEventsAfter(ctx context.Context, db DB, contactID, after int64) ([]Event, error) {
	rows, err := db.Query(ctx, `SELECT id, contact_id, name, properties, source, occurred_at, changed
		FROM events WHERE contact_id = $1 AND id > $2 ORDER BY id`, contactID, after)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, &e.ContactID, &e.Name, &e.Properties, &e.Source, &e.OccurredAt, &e.Changed); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
