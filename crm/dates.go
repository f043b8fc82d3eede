package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/cairnhq/cairn/journey"
	"github.com/jackc/pgx/v5"
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
	rows, err := db.Query(ctx, `SELECT c.id FROM contacts c WHERE `+match+`
		AND NOT EXISTS (SELECT 1 FROM events e WHERE e.dedupe_key = 'date:' || $1::text || ':' || c.id || ':' || $4::text)
		ORDER BY c.id`, rule.Key(), rule.Field, rule.OffsetDays(), today)
	if err != nil {
		return 0, fmt.Errorf("record dates reached for %s: %w", rule.Key(), err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("record dates reached for %s: %w", rule.Key(), err)
	}
	// One event per contact, rule and day, through the one path events take: scoring rules on
	// date_reached apply as they would to any event.
	var recorded int64
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		for _, id := range ids {
			_, inserted, err := appendEvent(ctx, tx, NewEvent{ContactID: id, Name: journey.EventDateReached,
				Properties: map[string]any{"rule": rule.Key(), "field": rule.Field, "date": today},
				Source:     SourceScheduler, DedupeKey: fmt.Sprintf("date:%s:%d:%s", rule.Key(), id, today), OccurredAt: now})
			if err != nil {
				return err
			}
			if inserted {
				recorded++
			}
		}
		return nil
	})
	return recorded, err
}
