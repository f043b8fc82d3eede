package crm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/journey"
)

// SendCheck is what a send must respect: its channel's policy as it applies to the send (the
// journey's over the defaults), and who asks.
type SendCheck struct {
	Channel string
	Policy  journey.ChannelPolicy
	// Transactional sends are neither held back nor counted.
	Transactional bool
	// IfCapped is the step's if_capped: skip records the send as skipped, not deferred.
	IfCapped string
	// Timezone is the journey's, for contacts without one.
	Timezone string
	Journey  string
	Step     string
	// At is now.
	At time.Time
}

// Deferral is a send the policy holds back: until when, by which rule ("cap 2 per 24h",
// "quiet hours 21:00-08:00"), and whether the step skips it instead.
type Deferral struct {
	Until   time.Time `json:"until"`
	Rule    string    `json:"rule"`
	Skipped bool      `json:"skipped,omitempty"`
}

// limited says whether the check has anything to hold a send back for.
func (c *SendCheck) limited() bool {
	return len(c.Policy.Caps) > 0 || c.Policy.QuietHours != nil
}

// reserve checks a send against its policy and, when it may go now, takes its place among the
// sends the caps count, in tx, with the contact's row locked: journeys racing to message one
// contact are counted one after the other. A key that holds a place already keeps it (a
// retry). A send held back gets a Deferral, recorded for the journey's counts, and no place.
//
// Every send but a transactional one takes a place, whatever its own policy: a journey without
// caps still counts toward the caps of the journeys that have them.
func reserve(ctx context.Context, tx pgx.Tx, key string, contactID int64, c *SendCheck) (*Deferral, error) {
	if c == nil || c.Transactional {
		return nil, nil
	}
	var zone string
	err := tx.QueryRow(ctx, `SELECT COALESCE(timezone, '') FROM contacts WHERE id = $1 FOR NO KEY UPDATE`, contactID).Scan(&zone)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lock contact: %w", err)
	}
	var held bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM send_reservations WHERE idempotency_key = $1)`, key).Scan(&held); err != nil {
		return nil, fmt.Errorf("read reservation: %w", err)
	}
	if held {
		return nil, nil
	}
	if c.IfCapped == journey.IfCappedSkip {
		// A retry of a send already skipped is skipped again, whatever the caps say now.
		prior := &Deferral{Skipped: true}
		err := tx.QueryRow(ctx, `SELECT until, rule FROM send_deferrals WHERE idempotency_key = $1 AND outcome = 'skipped' LIMIT 1`, key).Scan(&prior.Until, &prior.Rule)
		if err == nil {
			return prior, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("read skipped send: %w", err)
		}
	}
	if !c.limited() {
		return nil, insertReservation(ctx, tx, key, contactID, c)
	}
	var longest time.Duration
	for _, cp := range c.Policy.Caps {
		longest = max(longest, cp.Per.D)
	}
	var sent []time.Time
	if longest > 0 {
		rows, err := tx.Query(ctx, `SELECT reserved_at FROM send_reservations WHERE contact_id = $1 AND channel = $2 AND reserved_at > $3
			ORDER BY reserved_at`, contactID, c.Channel, c.At.Add(-longest))
		if err != nil {
			return nil, fmt.Errorf("count sends: %w", err)
		}
		if sent, err = pgx.CollectRows(rows, pgx.RowTo[time.Time]); err != nil {
			return nil, fmt.Errorf("count sends: %w", err)
		}
	}
	loc, _ := journey.ContactZone(zone, c.Timezone)
	until, rule := Allowed(c.Policy, sent, c.At, loc)
	if !until.After(c.At) {
		return nil, insertReservation(ctx, tx, key, contactID, c)
	}
	d := &Deferral{Until: until, Rule: rule, Skipped: c.IfCapped == journey.IfCappedSkip}
	outcome := "deferred"
	if d.Skipped {
		outcome = "skipped"
	}
	if _, err := tx.Exec(ctx, `INSERT INTO send_deferrals (idempotency_key, until, contact_id, journey_id, step_id, channel, rule, outcome, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		key, until, contactID, c.Journey, c.Step, c.Channel, rule, outcome, c.At); err != nil {
		return nil, fmt.Errorf("record deferral: %w", err)
	}
	return d, nil
}

// insertReservation takes the send's place, and forgets the contact's places older than any
// cap can count (MaxCapPeriod), so the table holds about a year of sends.
func insertReservation(ctx context.Context, tx pgx.Tx, key string, contactID int64, c *SendCheck) error {
	if _, err := tx.Exec(ctx, `DELETE FROM send_reservations WHERE contact_id = $1 AND channel = $2 AND reserved_at < $3`,
		contactID, c.Channel, c.At.Add(-journey.MaxCapPeriod)); err != nil {
		return fmt.Errorf("forget old sends: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO send_reservations (idempotency_key, contact_id, channel, reserved_at) VALUES ($1, $2, $3, $4)`,
		key, contactID, c.Channel, c.At); err != nil {
		return fmt.Errorf("reserve send: %w", err)
	}
	return nil
}

// Allowed is the first moment at or after now when a send may go out under the policy,
// given the times of the sends its caps count (sorted), in the contact's zone: now itself, or
// later with the rule that holds it back now. A cap of Max per Per lets a send go at t when
// fewer than Max sends are in (t-Per, t]: in any period of length Per there are then at most
// Max. Quiet hours move a moment inside them to their end; both are applied until neither
// moves it (caps only let more through as time passes).
func Allowed(p journey.ChannelPolicy, sent []time.Time, now time.Time, loc *time.Location) (time.Time, string) {
	t, rule := now, ""
	for range 16 {
		next, why := t, ""
		if p.QuietHours != nil {
			if end, quiet := p.QuietHours.End(next, loc); quiet {
				next, why = end, p.QuietHours.String()
			}
		}
		for _, cp := range p.Caps {
			if free := capFree(cp, sent, next); free.After(next) {
				next, why = free, cp.String()
			}
		}
		if !next.After(t) {
			break
		}
		if rule == "" {
			rule = why
		}
		t = next
	}
	return t, rule
}

// capFree is the first moment at or after t when the cap has room: once enough of the sends in
// (t-Per, t] have left it.
func capFree(c journey.Cap, sent []time.Time, t time.Time) time.Time {
	from := t.Add(-c.Per.D)
	i, _ := slices.BinarySearchFunc(sent, from, func(s, f time.Time) int {
		if s.After(f) {
			return 1
		}
		return -1
	})
	in := sent[i:] // sends after t-Per
	if len(in) < c.Max {
		return t
	}
	// The oldest len(in)-Max+1 must leave the window: the last of them leaves at its time + Per.
	return in[len(in)-c.Max].Add(c.Per.D)
}

// ReleaseSend gives back the place a send took when it turns out not to happen (a refusal).
func ReleaseSend(ctx context.Context, db DB, key string) error {
	if _, err := db.Exec(ctx, `DELETE FROM send_reservations WHERE idempotency_key = $1`, key); err != nil {
		return fmt.Errorf("release send: %w", err)
	}
	return nil
}

// PolicyStats counts the sends a journey's policy held back, per step, channel and rule: each
// send once per rule, however often it was deferred.
type PolicyStats struct {
	Step     string `json:"step"`
	Channel  string `json:"channel"`
	Rule     string `json:"rule"`
	Deferred int64  `json:"deferred"`
	Skipped  int64  `json:"skipped"`
}

func policyStats(ctx context.Context, db DB, journeyID string) ([]PolicyStats, error) {
	rows, err := db.Query(ctx, `SELECT step_id, channel, rule,
			count(DISTINCT idempotency_key) FILTER (WHERE outcome = 'deferred'),
			count(DISTINCT idempotency_key) FILTER (WHERE outcome = 'skipped')
		FROM send_deferrals WHERE journey_id = $1 GROUP BY step_id, channel, rule ORDER BY step_id, channel, rule`, journeyID)
	if err != nil {
		return nil, fmt.Errorf("count deferrals: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PolicyStats])
	if err != nil {
		return nil, fmt.Errorf("count deferrals: %w", err)
	}
	if out == nil {
		out = []PolicyStats{}
	}
	return out, nil
}
