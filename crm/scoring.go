package crm

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ScoringRule gives points for an event.
type ScoringRule struct {
	ID           string         `json:"id"`
	Score        string         `json:"score,omitempty"`
	Event        string         `json:"event"`
	Where        map[string]any `json:"where,omitempty"`
	Points       float64        `json:"points"`
	Cap          *float64       `json:"cap,omitempty"`
	CapPeriod    time.Duration  `json:"-"`
	ExpiresAfter time.Duration  `json:"-"`
}

// PutScoringRule saves a rule; created says it is new.
func PutScoringRule(ctx context.Context, db DB, r ScoringRule) (bool, error) {
	if r.Where == nil {
		r.Where = map[string]any{}
	}
	var created bool
	err := db.QueryRow(ctx, `INSERT INTO scoring_rules (id, score, event, "where", points, cap, cap_period_seconds, expires_after_seconds)
		VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, 0), NULLIF($8, 0))
		ON CONFLICT (id) DO UPDATE SET score = $2, event = $3, "where" = $4, points = $5, cap = $6,
			cap_period_seconds = NULLIF($7, 0), expires_after_seconds = NULLIF($8, 0), updated_at = now()
		RETURNING (xmax = 0)`, r.ID, r.Score, r.Event, r.Where, r.Points, r.Cap,
		int64(r.CapPeriod/time.Second), int64(r.ExpiresAfter/time.Second)).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("save scoring rule %s: %w", r.ID, err)
	}
	return created, nil
}

// applyRules awards the points of every rule the event matches, in the event's transaction,
// respecting caps; each award records score_changed. score_changed itself earns nothing, so
// rules cannot feed on their own output.
func applyRules(ctx context.Context, tx DB, contactID int64, name string, props map[string]any, at time.Time) error {
	if name == "score_changed" {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id, score, points::float8, cap::float8, cap_period_seconds, expires_after_seconds
		FROM scoring_rules WHERE event = $1 AND $2::jsonb @> "where" ORDER BY id`, name, props)
	if err != nil {
		return fmt.Errorf("scoring rules: %w", err)
	}
	type rule struct {
		id, score      string
		points         float64
		cap            *float64
		period, expiry *int64
	}
	var rules []rule
	for rows.Next() {
		var r rule
		if err := rows.Scan(&r.id, &r.score, &r.points, &r.cap, &r.period, &r.expiry); err != nil {
			rows.Close()
			return err
		}
		rules = append(rules, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range rules {
		points := r.points
		if r.cap != nil {
			var awarded float64
			q := `SELECT COALESCE(sum(delta), 0)::float8 FROM score_changes WHERE contact_id = $1 AND rule_id = $2`
			args := []any{contactID, r.id}
			if r.period != nil {
				q += ` AND at > $3`
				args = append(args, at.Add(-time.Duration(*r.period)*time.Second))
			}
			if err := tx.QueryRow(ctx, q, args...).Scan(&awarded); err != nil {
				return fmt.Errorf("rule %s cap: %w", r.id, err)
			}
			points = min(points, *r.cap-awarded)
			if points <= 0 {
				continue
			}
		}
		if _, err := adjustScore(ctx, tx, contactID, r.score, points, "rule "+r.id+": "+name, "", at); err != nil {
			return err
		}
		var expires *time.Time
		if r.expiry != nil {
			e := at.Add(time.Duration(*r.expiry) * time.Second)
			expires = &e
		}
		if _, err := tx.Exec(ctx, `UPDATE score_changes SET rule_id = $2, expires_at = $3, at = $4
			WHERE id = (SELECT max(id) FROM score_changes WHERE contact_id = $1)`, contactID, r.id, expires, at); err != nil {
			return fmt.Errorf("rule %s: %w", r.id, err)
		}
	}
	return nil
}

// ExpireScores takes back points whose rule said they expire, once each; the score drops and
// score_changed is recorded.
func ExpireScores(ctx context.Context, db DB, now time.Time) (int, error) {
	n := 0
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE score_changes SET expired = true
			WHERE expires_at <= $1 AND NOT expired RETURNING contact_id, name, delta::float8, rule_id`, now)
		if err != nil {
			return fmt.Errorf("expire scores: %w", err)
		}
		type award struct {
			contact     int64
			score, rule string
			delta       float64
		}
		var awards []award
		for rows.Next() {
			var a award
			if err := rows.Scan(&a.contact, &a.score, &a.delta, &a.rule); err != nil {
				rows.Close()
				return err
			}
			awards = append(awards, a)
		}
		rows.Close()
		for _, a := range awards {
			if _, err := adjustScore(ctx, tx, a.contact, a.score, -a.delta, "expired: rule "+a.rule, "", now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
