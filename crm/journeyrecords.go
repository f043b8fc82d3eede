package crm

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecordGoal records a goal met in a run, and the goal_met event, once.
func RecordGoal(ctx context.Context, db DB, journeyID string, contactID int64, goalID, runID string, at time.Time) error {
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `INSERT INTO goal_completions (journey_id, contact_id, goal_id, run_id, met_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, journeyID, contactID, goalID, runID, at)
		if err != nil {
			return fmt.Errorf("record goal: %w", err)
		}
		if ct.RowsAffected() == 0 {
			return nil
		}
		return appendOwn(ctx, tx, contactID, "goal_met", map[string]any{"journey": journeyID, "goal": goalID},
			fmt.Sprintf("goal:%s:%d:%s:%s", journeyID, contactID, goalID, runID), at)
	})
}

// RecordRunEnd closes the run's enrollment and records journey_completed or journey_exited,
// once, so "completed journey J" conditions and journeys triggered by it see it at once.
// triggerEvent, when not 0, is the event that started the run: the dispatcher finds by it
// that the run an event started has ended (RunEndedFor).
func RecordRunEnd(ctx context.Context, db DB, journeyID string, contactID int64, runID, status string, at time.Time, triggerEvent int64) error {
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE enrollments SET ended_at = $4 WHERE journey_id = $1 AND contact_id = $2 AND run_id = $3 AND ended_at IS NULL`,
			journeyID, contactID, runID, at); err != nil {
			return fmt.Errorf("end enrollment: %w", err)
		}
		// The run's entry says how it ended (made here when the run ended before the
		// dispatcher recorded its start).
		if _, err := tx.Exec(ctx, `INSERT INTO journey_entries (journey_id, run_id, contact_id, entered_at, ended_at, status)
			VALUES ($1, $3, $2, $5, $5, $4)
			ON CONFLICT (journey_id, run_id) DO UPDATE SET status = EXCLUDED.status, ended_at = EXCLUDED.ended_at
			WHERE journey_entries.ended_at IS NULL OR journey_entries.status = 'ended'`,
			journeyID, contactID, runID, status, at); err != nil {
			return fmt.Errorf("end entry: %w", err)
		}
		props := map[string]any{"journey": journeyID}
		if triggerEvent != 0 {
			props["trigger_event"] = triggerEvent
		}
		return appendOwn(ctx, tx, contactID, "journey_"+status, props, runEndKey(journeyID, contactID, runID), at)
	})
}

// RunEndedFor says whether a run of the journey that the event started has recorded its end:
// a dispatch of the event tried again after a starter died between starting the run and
// enrolling it knows from this that the start happened, even when the run is over.
func RunEndedFor(ctx context.Context, db DB, journeyID string, contactID, eventID int64) (bool, error) {
	var ended bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE contact_id = $1
			AND name IN ('journey_completed', 'journey_exited', 'journey_failed', 'journey_cancelled')
			AND properties @> jsonb_build_object('journey', $2::text, 'trigger_event', $3::bigint))`, contactID, journeyID, eventID).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("find run end: %w", err)
	}
	return ended, nil
}

// runEndKey is the dedupe key of a run's end event: the dispatcher finds by it whether a run
// it is enrolling has ended already.
func runEndKey(journeyID string, contactID int64, runID string) string {
	return fmt.Sprintf("end:%s:%d:%s", journeyID, contactID, runID)
}
