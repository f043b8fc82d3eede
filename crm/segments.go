package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/journey"
)

// Segment is a saved condition.
type Segment struct {
	ID        string            `json:"id"`
	Name      string            `json:"name,omitempty"`
	Condition journey.Condition `json:"condition"`
}

// PutSegment saves a segment after checking that its condition is within the document limits,
// has nothing only a journey gives a meaning to (a *journey.ValidationError says where), and
// compiles; created says it is new.
func PutSegment(ctx context.Context, db DB, seg Segment) (bool, error) {
	if probs := journey.CheckSegmentCondition(&seg.Condition, "condition"); len(probs) > 0 {
		return false, &journey.ValidationError{Problems: probs}
	}
	if _, err := (&sqlBuilder{env: Env{Now: time.Unix(0, 0)}}).compile(seg.Condition); err != nil {
		return false, err
	}
	var created bool
	err := db.QueryRow(ctx, `INSERT INTO segments (id, name, condition) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET name = $2, condition = $3, updated_at = now() RETURNING (xmax = 0)`,
		seg.ID, seg.Name, seg.Condition).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("save segment %s: %w", seg.ID, err)
	}
	return created, nil
}

// SegmentByID reads a segment.
func SegmentByID(ctx context.Context, db DB, id string) (Segment, error) {
	seg := Segment{ID: id}
	var raw []byte
	err := db.QueryRow(ctx, `SELECT name, condition FROM segments WHERE id = $1`, id).Scan(&seg.Name, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return seg, fmt.Errorf("segment %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return seg, fmt.Errorf("read segment: %w", err)
	}
	return seg, json.Unmarshal(raw, &seg.Condition)
}

// SegmentContacts lists matching contacts in id order after the given id (keyset pagination),
// within env's time limit.
func SegmentContacts(ctx context.Context, db DB, cond journey.Condition, env Env, after int64, limit int) ([]Contact, error) {
	var out []Contact
	err := bounded(ctx, db, env.timeout(), func(tx pgx.Tx) error {
		b, err := builder(ctx, tx, cond, env, true)
		if err != nil {
			return err
		}
		where, err := b.compile(cond)
		if err != nil {
			return err
		}
		a, l := b.arg(after), b.arg(limit)
		rows, err := tx.Query(ctx, `SELECT c.id, c.external_id, COALESCE(c.email, ''), c.traits, c.created_at, c.updated_at
			FROM contacts c WHERE c.id > `+a+` AND `+where+` ORDER BY c.id LIMIT `+l, b.args...)
		if err != nil {
			return fmt.Errorf("list segment: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c Contact
			if err := rows.Scan(&c.ID, &c.ExternalID, &c.Email, &c.Traits, &c.CreatedAt, &c.UpdatedAt); err != nil {
				return err
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list segment: %w", err)
		}
		return nil
	})
	return out, err
}

// ContactSegments lists the ids of the segments the contact is in now, each checked within
// DefaultQueryTimeout on its own: a segment whose check fails (too slow, or a condition stored
// before it would be refused) is listed in failed with its error, and the others are still
// answered.
func ContactSegments(ctx context.Context, db DB, contactID int64, now time.Time) (in []string, failed map[string]string, err error) {
	rows, err := db.Query(ctx, `SELECT id, condition FROM segments ORDER BY id`)
	if err != nil {
		return nil, nil, fmt.Errorf("read segments: %w", err)
	}
	var all []Segment
	for rows.Next() {
		var seg Segment
		var raw []byte
		if err := rows.Scan(&seg.ID, &raw); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if err := json.Unmarshal(raw, &seg.Condition); err != nil {
			rows.Close()
			return nil, nil, err
		}
		all = append(all, seg)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	in, failed = []string{}, map[string]string{}
	for _, seg := range all {
		ok, err := Matches(ctx, db, contactID, seg.Condition, Env{Now: now})
		switch {
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case err != nil:
			failed[seg.ID] = err.Error()
		case ok:
			in = append(in, seg.ID)
		}
	}
	return in, failed, nil
}

// TrackedSegments are the segments some unpaused journey triggers on.
func TrackedSegments(ctx context.Context, db DB) ([]Segment, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT s.id, s.condition FROM segments s
		JOIN journeys j ON NOT j.paused
		JOIN LATERAL (SELECT * FROM journey_versions WHERE journey_id = j.id ORDER BY version DESC LIMIT 1) v ON true
		WHERE 'segment_entered' = ANY (v.trigger_events)
		  AND v.definition -> 'triggers' @> jsonb_build_array(jsonb_build_object('kind', 'segment_entered', 'where', jsonb_build_object('segment', s.id)))
		ORDER BY s.id`)
	if err != nil {
		return nil, fmt.Errorf("tracked segments: %w", err)
	}
	defer rows.Close()
	var out []Segment
	for rows.Next() {
		var seg Segment
		var raw []byte
		if err := rows.Scan(&seg.ID, &raw); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &seg.Condition); err != nil {
			return nil, err
		}
		out = append(out, seg)
	}
	return out, rows.Err()
}

// RecheckMembership compares the contact's membership of each segment with the last one seen
// and records segment_entered / segment_exited for the changes.
func RecheckMembership(ctx context.Context, db DB, segs []Segment, contactID int64, now time.Time) error {
	for _, seg := range segs {
		ok, err := Matches(ctx, db, contactID, seg.Condition, Env{Now: now})
		if err != nil {
			return fmt.Errorf("segment %s: %w", seg.ID, err)
		}
		if ok {
			ct, err := db.Exec(ctx, `INSERT INTO segment_members (segment_id, contact_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, seg.ID, contactID)
			if err != nil {
				return fmt.Errorf("record membership: %w", err)
			}
			if ct.RowsAffected() == 1 {
				if err := appendOwn(ctx, db, contactID, "segment_entered", map[string]any{"segment": seg.ID}, "", now); err != nil {
					return err
				}
			}
			continue
		}
		ct, err := db.Exec(ctx, `DELETE FROM segment_members WHERE segment_id = $1 AND contact_id = $2`, seg.ID, contactID)
		if err != nil {
			return fmt.Errorf("record membership: %w", err)
		}
		if ct.RowsAffected() == 1 {
			if err := appendOwn(ctx, db, contactID, "segment_exited", map[string]any{"segment": seg.ID}, "", now); err != nil {
				return err
			}
		}
	}
	return nil
}

// RecheckAllMembers re-evaluates every tracked segment over all contacts (for conditions that
// change with time alone, such as "no order within 30 days") and records the changes.
func RecheckAllMembers(ctx context.Context, db DB, now time.Time) (entered, exited int64, err error) {
	segs, err := TrackedSegments(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	for _, seg := range segs {
		b, err := builder(ctx, db, seg.Condition, Env{Now: now}, true)
		if err != nil {
			return entered, exited, err
		}
		id := b.arg(seg.ID)
		where, err := b.compile(seg.Condition)
		if err != nil {
			return entered, exited, err
		}
		err = WithTx(ctx, db, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `INSERT INTO segment_members (segment_id, contact_id)
				SELECT `+id+`, c.id FROM contacts c WHERE `+where+`
				ON CONFLICT DO NOTHING RETURNING contact_id`, b.args...)
			if err != nil {
				return fmt.Errorf("segment %s entries: %w", seg.ID, err)
			}
			joined, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return fmt.Errorf("segment %s entries: %w", seg.ID, err)
			}
			rows, err = tx.Query(ctx, `DELETE FROM segment_members m WHERE m.segment_id = `+id+`
				AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = m.contact_id AND `+where+`)
				RETURNING contact_id`, b.args...)
			if err != nil {
				return fmt.Errorf("segment %s exits: %w", seg.ID, err)
			}
			left, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return fmt.Errorf("segment %s exits: %w", seg.ID, err)
			}
			// Each change is an event like any other: scoring rules and journeys see it.
			for _, c := range joined {
				if err := appendOwn(ctx, tx, c, journey.EventSegmentEntered, map[string]any{"segment": seg.ID}, "", now); err != nil {
					return err
				}
			}
			for _, c := range left {
				if err := appendOwn(ctx, tx, c, journey.EventSegmentExited, map[string]any{"segment": seg.ID}, "", now); err != nil {
					return err
				}
			}
			entered += int64(len(joined))
			exited += int64(len(left))
			return nil
		})
		if err != nil {
			return entered, exited, err
		}
	}
	return entered, exited, nil
}

// ScoreReason is one recent change of a score.
type ScoreReason struct {
	Delta  float64   `json:"delta"`
	New    float64   `json:"new"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Score is a named score with its recent reasons.
type Score struct {
	Name   string        `json:"name"`
	Value  float64       `json:"value"`
	Recent []ScoreReason `json:"recent"`
}

// Scores returns the contact's scores with their last ten reasons each.
func Scores(ctx context.Context, db DB, contactID int64) ([]Score, error) {
	rows, err := db.Query(ctx, `SELECT s.key, s.value::text::float8 FROM contacts c, jsonb_each(c.scores) s WHERE c.id = $1 ORDER BY s.key`, contactID)
	if err != nil {
		return nil, fmt.Errorf("read scores: %w", err)
	}
	out := []Score{}
	for rows.Next() {
		var sc Score
		if err := rows.Scan(&sc.Name, &sc.Value); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, sc)
	}
	rows.Close()
	for i := range out {
		rs, err := db.Query(ctx, `SELECT delta::float8, new_value::float8, reason, at FROM score_changes
			WHERE contact_id = $1 AND name = $2 ORDER BY at DESC, id DESC LIMIT 10`, contactID, out[i].Name)
		if err != nil {
			return nil, err
		}
		out[i].Recent = []ScoreReason{}
		for rs.Next() {
			var r ScoreReason
			if err := rs.Scan(&r.Delta, &r.New, &r.Reason, &r.At); err != nil {
				rs.Close()
				return nil, err
			}
			out[i].Recent = append(out[i].Recent, r)
		}
		rs.Close()
	}
	return out, nil
}
