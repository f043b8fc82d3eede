package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/cairnhq/cairn/journey"
)

// DateRules lists the distinct date_field rules of unpaused journeys (newest versions).
func DateRules(ctx context.Context, db DB) ([]journey.DateTrigger, error) {
	rows, err := db.Query(ctx, `SELECT v.definition FROM journeys j
		JOIN LATERAL (SELECT * FROM journey_versions WHERE journey_id = j.id ORDER BY version DESC LIMIT 1) v ON true
		WHERE NOT j.paused AND 'date_reached' = ANY (v.trigger_events)`)
	if err != nil {
		return nil, fmt.Errorf("date rules: %w", err)
	}
	defer rows.Close()
	rules := map[string]journey.DateTrigger{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var j journey.Journey
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("decode journey: %w", err)
		}
		for _, t := range j.Triggers {
			if t.Date != nil {
				rules[t.Date.Key()] = *t.Date
			}
		}
	}
	keys := make([]string, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]journey.DateTrigger, len(keys))
	for i, k := range keys {
		out[i] = rules[k]
	}
	return out, rows.Err()
}

// RecordDatesReached records date_reached for every contact whose date field (moved by the
// rule's offset) is today, or whose anniversary it is, once per contact, rule and day.
func RecordDatesReached(ctx context.Context, db DB, rule journey.DateTrigger, now time.Time) (int64, error) {
	today := now.UTC().Format("2006-01-02")
	match := `cairn_time(c.traits -> $2::text)::date = $4::date - $3::int`
	if rule.Anniversary {
		match = `to_char(cairn_time(c.traits -> $2::text)::date, 'MM-DD') = to_char($4::date - $3::int, 'MM-DD')
			AND cairn_time(c.traits -> $2::text)::date < $4::date - $3::int`
	}
	tag, err := db.Exec(ctx, `INSERT INTO events (contact_id, name, properties, source, dedupe_key, occurred_at)
		SELECT c.id, 'date_reached', jsonb_build_object('rule', $1::text, 'field', $2::text, 'date', $4::text), 'scheduler',
		       'date:' || $1::text || ':' || c.id || ':' || $4::text, $5
		FROM contacts c WHERE `+match+`
		ON CONFLICT (dedupe_key) DO NOTHING`, rule.Key(), rule.Field, rule.OffsetDays(), today, now)
	if err != nil {
		return 0, fmt.Errorf("record dates reached for %s: %w", rule.Key(), err)
	}
	if tag.RowsAffected() > 0 {
		if _, err := db.Exec(ctx, `SELECT pg_notify($1, '')`, EventsChannel); err != nil {
			return 0, err
		}
	}
	return tag.RowsAffected(), nil
}
