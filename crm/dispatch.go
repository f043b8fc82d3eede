package crm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The dispatch queue: events not yet dispatched, taken a contact at a time. A dispatcher
// leases a contact (dispatch_leases), reads that contact's pending events oldest first, makes
// its Temporal calls with no transaction open, then marks the events and releases the lease.
// Only one dispatcher holds a contact at a time, so one contact's events go out in order
// however many starters run; a lease that is not renewed expires, and another dispatcher
// picks the contact up from its oldest event not yet marked.

// claimSQL leases up to $2 contacts whose oldest pending events are due and free, and returns
// up to $3 pending events of each, in contact and id order. The candidate scan walks pending
// events oldest first, so the contacts waiting longest are taken first. An expired lease row
// is taken over; a live one (held, or a backoff) is skipped.
const claimSQL = `
WITH cand AS (
	SELECT contact_id FROM (
		SELECT e.id, e.contact_id FROM events e
		WHERE e.dispatched_at IS NULL AND e.failed_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM dispatch_leases l WHERE l.contact_id = e.contact_id AND l.expires_at > now())
		ORDER BY e.id LIMIT $4) oldest
	GROUP BY contact_id ORDER BY min(id) LIMIT $2
), taken AS (
	INSERT INTO dispatch_leases AS l (contact_id, owner, expires_at)
	SELECT contact_id, $1, now() + $5 * interval '1 millisecond' FROM cand ORDER BY contact_id
	ON CONFLICT (contact_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at, recovered = l.owner IS NOT NULL
	WHERE l.expires_at <= now()
	RETURNING contact_id, recovered
)
SELECT e.id, e.contact_id, c.external_id, e.name, e.properties, e.source, e.occurred_at, e.changed, e.attempts, t.recovered,
       e.received_at, COALESCE(e.traceparent, ''),
       COALESCE((SELECT array_agg(a.alias ORDER BY a.alias) FROM contact_aliases a WHERE a.contact_id = c.id), '{}')
FROM taken t
JOIN contacts c ON c.id = t.contact_id
JOIN LATERAL (
	SELECT * FROM events p WHERE p.contact_id = t.contact_id AND p.dispatched_at IS NULL AND p.failed_at IS NULL
	ORDER BY p.id LIMIT $3) e ON true
ORDER BY e.contact_id, e.id`

// PendingEvent is an event a dispatcher holds, with how often it was tried before.
type PendingEvent struct {
	Event
	Attempts int
	// Recovered: the contact's lease was taken over from a dispatcher that stopped, which may
	// have made some of this event's calls without recording them.
	Recovered bool
	// ReceivedAt is when the event was accepted; TraceParent the W3C traceparent of the span
	// that recorded it ("" when none).
	ReceivedAt  time.Time
	TraceParent string
}

// ClaimContacts leases up to contacts contacts for owner for the lease's length and returns
// up to perContact of each one's pending events, oldest first, grouped by contact. A contact
// held by another dispatcher, or backing off after a failure, is not taken.
func ClaimContacts(ctx context.Context, db DB, owner string, contacts, perContact int, lease time.Duration) ([]PendingEvent, error) {
	// The candidate scan looks a little past the contacts asked for: a contact usually has
	// more than one pending event.
	rows, err := db.Query(ctx, claimSQL, owner, contacts, perContact, 4*contacts, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	defer rows.Close()
	var out []PendingEvent
	for rows.Next() {
		var e PendingEvent
		if err := rows.Scan(&e.ID, &e.ContactID, &e.ExternalID, &e.Name, &e.Properties, &e.Source, &e.OccurredAt,
			&e.Changed, &e.Attempts, &e.Recovered, &e.ReceivedAt, &e.TraceParent, &e.Aliases); err != nil {
			return nil, fmt.Errorf("claim events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// RenewLeases extends owner's leases on the contacts and returns those it still holds; a
// contact missing from the answer was lost (the lease ran out and another took it) and must
// not be dispatched further by this owner.
func RenewLeases(ctx context.Context, db DB, owner string, contacts []int64, lease time.Duration) ([]int64, error) {
	rows, err := db.Query(ctx, `UPDATE dispatch_leases SET expires_at = now() + $3 * interval '1 millisecond'
		WHERE owner = $1 AND contact_id = ANY ($2) RETURNING contact_id`, owner, contacts, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	return kept, nil
}

// DispatchOutcome is what became of one leased contact's events.
type DispatchOutcome struct {
	ContactID int64
	// Done are the events whose calls all went through, in order.
	Done []int64
	// Failed, when not zero, is the event that failed, with its error; events after it were
	// not tried.
	Failed int64
	Error  string
	// Dead dead-letters the failed event: later events of the contact go on without it.
	// Otherwise the contact backs off until RetryIn has passed.
	Dead    bool
	RetryIn time.Duration
}

// finishSQL records a dispatch outcome in one statement. held locks the lease row if owner
// still holds it (a lease another dispatcher has taken over no longer matches once that one
// commits), and every change below happens only then: the done events marked, the failed
// event ($4, 0 for none) counted and, when $6 says so, dead-lettered; then the lease is
// released, or, for a failure that backs off, kept ownerless until the backoff ends ($7 ms).
// The two lease changes exclude each other, so the row is changed once.
const finishSQL = `
WITH held AS (
	SELECT contact_id FROM dispatch_leases WHERE contact_id = $1 AND owner = $2 FOR UPDATE),
done AS (
	UPDATE events SET dispatched_at = now(), last_error = NULL
	WHERE id = ANY ($3) AND dispatched_at IS NULL AND EXISTS (SELECT 1 FROM held)),
failed AS (
	UPDATE events SET attempts = attempts + 1, last_error = $5, failed_at = CASE WHEN $6 THEN now() ELSE failed_at END
	WHERE id = $4 AND EXISTS (SELECT 1 FROM held)),
backoff AS (
	UPDATE dispatch_leases SET owner = NULL, expires_at = now() + $7 * interval '1 millisecond'
	WHERE contact_id IN (SELECT contact_id FROM held) AND $4 <> 0 AND NOT $6)
DELETE FROM dispatch_leases WHERE contact_id IN (SELECT contact_id FROM held) AND ($4 = 0 OR $6)`

// FinishDispatch records an outcome in one statement: done events marked, a failure counted
// (dead-lettered or backed off), and the lease released, or turned into the contact's backoff.
// It does nothing to a contact whose lease owner no longer holds: the new holder decides.
func FinishDispatch(ctx context.Context, db DB, owner string, o DispatchOutcome) error {
	if _, err := db.Exec(ctx, finishSQL, o.ContactID, owner, o.Done, o.Failed, o.Error, o.Dead, o.RetryIn.Milliseconds()); err != nil {
		return fmt.Errorf("finish dispatch of contact %d: %w", o.ContactID, err)
	}
	return nil
}

// ReleaseLeases gives up owner's leases without marking anything (a dispatcher stopping):
// another dispatcher takes the contacts at once.
func ReleaseLeases(ctx context.Context, db DB, owner string) error {
	if _, err := db.Exec(ctx, `DELETE FROM dispatch_leases WHERE owner = $1`, owner); err != nil {
		return fmt.Errorf("release leases: %w", err)
	}
	return nil
}

// FailedEvent is a dead-lettered event.
type FailedEvent struct {
	Event
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	FailedAt  time.Time `json:"failed_at"`
}

// FailedEvents lists dead-lettered events with id below before (0: from the newest), newest
// first, at most limit.
func FailedEvents(ctx context.Context, db DB, before int64, limit int) ([]FailedEvent, error) {
	rows, err := db.Query(ctx, `SELECT e.id, e.contact_id, c.external_id, e.name, e.properties, e.source, e.occurred_at,
			e.attempts, COALESCE(e.last_error, ''), e.failed_at
		FROM events e JOIN contacts c ON c.id = e.contact_id
		WHERE e.failed_at IS NOT NULL AND e.dispatched_at IS NULL AND ($1 = 0 OR e.id < $1)
		ORDER BY e.id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	defer rows.Close()
	out := []FailedEvent{}
	for rows.Next() {
		var e FailedEvent
		if err := rows.Scan(&e.ID, &e.ContactID, &e.ExternalID, &e.Name, &e.Properties, &e.Source, &e.OccurredAt,
			&e.Attempts, &e.LastError, &e.FailedAt); err != nil {
			return nil, fmt.Errorf("list failed events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ErrNotFailed means a retry was asked for an event that is not dead-lettered.
var ErrNotFailed = errors.New("event is not dead-lettered")

// RetryEvent puts a dead-lettered event back in the queue with its attempts reset, ahead of
// the contact's backoff; it is dispatched as soon as a dispatcher takes its contact.
func RetryEvent(ctx context.Context, db DB, id int64) error {
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		var contactID int64
		var failed, dispatched bool
		err := tx.QueryRow(ctx, `SELECT contact_id, failed_at IS NOT NULL, dispatched_at IS NOT NULL FROM events WHERE id = $1 FOR UPDATE`, id).
			Scan(&contactID, &failed, &dispatched)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("event %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("retry event: %w", err)
		}
		if !failed || dispatched {
			return fmt.Errorf("event %d: %w", id, ErrNotFailed)
		}
		if _, err := tx.Exec(ctx, `UPDATE events SET failed_at = NULL, attempts = 0 WHERE id = $1`, id); err != nil {
			return fmt.Errorf("retry event: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dispatch_leases WHERE contact_id = $1 AND owner IS NULL`, contactID); err != nil {
			return fmt.Errorf("retry event: %w", err)
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, EventsChannel)
		return err
	})
}

// QueueDepth counts events waiting for dispatch, and dead-lettered ones.
func QueueDepth(ctx context.Context, db DB) (pending, failed int64, err error) {
	err = db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL),
		(SELECT count(*) FROM events WHERE failed_at IS NOT NULL AND dispatched_at IS NULL)`).Scan(&pending, &failed)
	if err != nil {
		return 0, 0, fmt.Errorf("queue depth: %w", err)
	}
	return pending, failed, nil
}

// Enroll records the run a SignalWithStart reached for the event. A run ID other than the
// stored one means a new run (a new entry, perhaps on a newer version); the same one means
// the event only reached the open run. eventID remembers which event reached it, so a retried
// dispatch of that event knows its start is done.
//
// A short run may end, and record its end, before the dispatcher gets here: its end event
// (journey_completed, …, keyed by the run) then closes the row at once. runKey is the run's
// key for a journey with one ("" otherwise): each key has its row.
func Enroll(ctx context.Context, db DB, journeyID string, contactID int64, runKey string, version int, workflowID, runID string, eventID int64, at time.Time) error {
	_, err := enroll(ctx, db, journeyID, contactID, runKey, version, workflowID, runID, eventID, at, true)
	return err
}

// EnrollUnlessOpen is Enroll, unless the contact's row for the journey (and run key) holds
// another run still open: then it records nothing and returns that run's ID. SignalWithStart
// answers with the execution open now, which is a later one than the CRM knows when the run
// has continued as new; the caller tells which, and enrolls again if the run is new. Reading
// and writing in one statement keeps the common case, a new or the same run, one round trip.
func EnrollUnlessOpen(ctx context.Context, db DB, journeyID string, contactID int64, runKey string, version int, workflowID, runID string, eventID int64, at time.Time) (open string, err error) {
	return enroll(ctx, db, journeyID, contactID, runKey, version, workflowID, runID, eventID, at, false)
}

func enroll(ctx context.Context, db DB, journeyID string, contactID int64, runKey string, version int, workflowID, runID string, eventID int64, at time.Time, replace bool) (string, error) {
	var open *string
	err := db.QueryRow(ctx, `WITH other AS (
			SELECT run_id FROM enrollments WHERE NOT $10 AND journey_id = $1 AND contact_id = $2 AND run_key = $9
			  AND ended_at IS NULL AND run_id <> $5),
		ended AS (SELECT occurred_at FROM events WHERE dedupe_key = $8),
		entry AS (INSERT INTO journey_entries (journey_id, run_id, contact_id, version, entered_at)
			SELECT $1, $5, $2, $3, $7 WHERE NOT EXISTS (SELECT 1 FROM other)
			ON CONFLICT (journey_id, run_id) DO UPDATE SET version = COALESCE(journey_entries.version, EXCLUDED.version),
			entered_at = LEAST(journey_entries.entered_at, EXCLUDED.entered_at)),
		enrolled AS (INSERT INTO enrollments (journey_id, contact_id, version, workflow_id, run_id, event_id, entered_at, ended_at, run_key)
			SELECT $1, $2, $3, $4, $5, $6, $7, (SELECT occurred_at FROM ended), $9 WHERE NOT EXISTS (SELECT 1 FROM other)
			ON CONFLICT (journey_id, contact_id, run_key) DO UPDATE
			SET version = CASE WHEN enrollments.run_id <> $5 OR enrollments.ended_at IS NOT NULL THEN $3 ELSE enrollments.version END,
			    entered_at = CASE WHEN enrollments.run_id <> $5 OR enrollments.ended_at IS NOT NULL THEN $7 ELSE enrollments.entered_at END,
			    ended_at = CASE WHEN enrollments.run_id <> $5 THEN (SELECT occurred_at FROM ended) ELSE enrollments.ended_at END,
			    workflow_id = $4, run_id = $5, event_id = $6)
		SELECT (SELECT run_id FROM other)`,
		journeyID, contactID, version, workflowID, runID, eventID, at, runEndKey(journeyID, contactID, runID), runKey, replace).Scan(&open)
	if err != nil {
		return "", fmt.Errorf("enroll contact %d in %s: %w", contactID, journeyID, err)
	}
	if open == nil {
		return "", nil
	}
	return *open, nil
}

// Enrollment is an open run of a contact.
type Enrollment struct {
	JourneyID  string
	WorkflowID string
	RunID      string
}

// Interested lists the contact's open runs whose journey version wants any of the interests
// (event names, and "field:<name>" for each field the event changed), leaving out the
// journeys in skip (already reached through their trigger).
func Interested(ctx context.Context, db DB, contactID int64, interests []string, skip []string) ([]Enrollment, error) {
	if skip == nil {
		skip = []string{}
	}
	rows, err := db.Query(ctx, `SELECT en.journey_id, en.workflow_id, en.run_id
		FROM enrollments en
		JOIN journey_versions v ON v.journey_id = en.journey_id AND v.version = en.version
		WHERE en.contact_id = $1 AND en.ended_at IS NULL AND v.interests && $2::text[] AND en.journey_id <> ALL ($3)
		ORDER BY en.journey_id`, contactID, interests, skip)
	if err != nil {
		return nil, fmt.Errorf("route event: %w", err)
	}
	return collectEnrollments(rows)
}

// OpenRuns lists every open run of the contact.
func OpenRuns(ctx context.Context, db DB, contactID int64) ([]Enrollment, error) {
	rows, err := db.Query(ctx, `SELECT journey_id, workflow_id, run_id FROM enrollments
		WHERE contact_id = $1 AND ended_at IS NULL ORDER BY journey_id`, contactID)
	if err != nil {
		return nil, fmt.Errorf("open runs: %w", err)
	}
	return collectEnrollments(rows)
}

func collectEnrollments(rows pgx.Rows) ([]Enrollment, error) {
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

// EndEnrollment closes the row of a run that turned out to be finished at the given time.
func EndEnrollment(ctx context.Context, db DB, journeyID string, contactID int64, runID string, at time.Time) error {
	_, err := db.Exec(ctx, `WITH entry AS (UPDATE journey_entries SET status = 'ended', ended_at = $4
			WHERE journey_id = $1 AND run_id = $3 AND ended_at IS NULL)
		UPDATE enrollments SET ended_at = $4 WHERE journey_id = $1 AND contact_id = $2 AND run_id = $3 AND ended_at IS NULL`,
		journeyID, contactID, runID, at)
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
	// EventID is the event whose dispatch last reached the run through the trigger.
	EventID int64
}

// EnrollmentOf returns the contact's last run of the journey (with that run key: "" for a
// journey without a key), or nil if it never entered.
func EnrollmentOf(ctx context.Context, db DB, journeyID string, contactID int64, runKey string) (*EnrollmentRecord, error) {
	e := &EnrollmentRecord{}
	var eventID *int64
	err := db.QueryRow(ctx, `SELECT version, run_id, entered_at, ended_at, event_id FROM enrollments WHERE journey_id = $1 AND contact_id = $2 AND run_key = $3`,
		journeyID, contactID, runKey).Scan(&e.Version, &e.RunID, &e.EnteredAt, &e.EndedAt, &eventID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read enrollment: %w", err)
	}
	if eventID != nil {
		e.EventID = *eventID
	}
	return e, nil
}

// EnrollmentRow is a contact's last run of one journey, as the CRM recorded it.
type EnrollmentRow struct {
	JourneyID  string     `json:"journey"`
	Version    int        `json:"version"`
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	EnteredAt  time.Time  `json:"entered_at"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	ContactID  int64      `json:"-"`
}

// ContactEnrollments lists the contact's last run of every journey it entered, newest first.
func ContactEnrollments(ctx context.Context, db DB, contactID int64) ([]EnrollmentRow, error) {
	rows, err := db.Query(ctx, `SELECT journey_id, version, workflow_id, run_id, entered_at, ended_at, contact_id
		FROM enrollments WHERE contact_id = $1 ORDER BY entered_at DESC, journey_id`, contactID)
	if err != nil {
		return nil, fmt.Errorf("list enrollments: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[EnrollmentRow])
	if err != nil {
		return nil, fmt.Errorf("list enrollments: %w", err)
	}
	return out, nil
}

// ClaimOpenEnrollments takes up to limit open enrollments not checked within the last
// interval, oldest check first, and marks them checked now, so dispatchers running the same
// sweep take different ones.
func ClaimOpenEnrollments(ctx context.Context, db DB, interval time.Duration, limit int) ([]EnrollmentRow, error) {
	rows, err := db.Query(ctx, `UPDATE enrollments e SET checked_at = now()
		FROM (SELECT journey_id, contact_id, run_key FROM enrollments
		      WHERE ended_at IS NULL AND (checked_at IS NULL OR checked_at < now() - $1 * interval '1 millisecond')
		      ORDER BY checked_at NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED) due
		WHERE e.journey_id = due.journey_id AND e.contact_id = due.contact_id AND e.run_key = due.run_key
		RETURNING e.journey_id, e.version, e.workflow_id, e.run_id, e.entered_at, e.ended_at, e.contact_id`, interval.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim open enrollments: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[EnrollmentRow])
	if err != nil {
		return nil, fmt.Errorf("claim open enrollments: %w", err)
	}
	return out, nil
}
