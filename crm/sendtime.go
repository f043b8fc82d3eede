package crm

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Engagement is what learned send times are learned from: opens and clicks.
var engagementEvents = []string{"email_opened", "email_clicked"}

// ContactEngagement lists when the contact opened or clicked an email since since.
func ContactEngagement(ctx context.Context, db DB, contactID int64, since time.Time) ([]time.Time, error) {
	rows, err := db.Query(ctx, `SELECT occurred_at FROM events WHERE contact_id = $1 AND name = ANY ($2) AND occurred_at >= $3`,
		contactID, engagementEvents, since)
	if err != nil {
		return nil, fmt.Errorf("read engagement: %w", err)
	}
	times, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("read engagement: %w", err)
	}
	return times, nil
}

// EngagementBin counts the opens and clicks of contacts of one time zone ("" for contacts
// without one) in one quarter of an hour: quarters, not hours, so that zones a half or a
// quarter hour off UTC still place each in its local hour.
type EngagementBin struct {
	Zone  string
	At    time.Time
	Count int64
}

// PopulationEngagement counts every contact's opens and clicks since since, by the contact's
// time zone and quarter hour: at most a few thousand rows per zone, however many events.
func PopulationEngagement(ctx context.Context, db DB, since time.Time) ([]EngagementBin, error) {
	rows, err := db.Query(ctx, `SELECT COALESCE(c.timezone, ''), date_bin('15 minutes', e.occurred_at, timestamptz '2000-01-01 00:00:00+00'), count(*)
		FROM events e JOIN contacts c ON c.id = e.contact_id
		WHERE e.name = ANY ($1) AND e.occurred_at >= $2
		GROUP BY 1, 2`, engagementEvents, since)
	if err != nil {
		return nil, fmt.Errorf("read population engagement: %w", err)
	}
	bins, err := pgx.CollectRows(rows, pgx.RowToStructByPos[EngagementBin])
	if err != nil {
		return nil, fmt.Errorf("read population engagement: %w", err)
	}
	return bins, nil
}
