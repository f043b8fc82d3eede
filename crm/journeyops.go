package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrArchived refuses what an archived journey may not do: start runs, take a new version.
var ErrArchived = errors.New("the journey is archived")

// ArchiveJourney archives a journey (no new runs, no new versions; runs in flight go on) or,
// with archived false, brings it back.
func ArchiveJourney(ctx context.Context, db DB, id string, archived bool, at time.Time) (*JourneyVersion, error) {
	ct, err := db.Exec(ctx, `UPDATE journeys SET archived_at = CASE WHEN $2 THEN COALESCE(archived_at, $3) END, updated_at = now() WHERE id = $1`,
		id, archived, at)
	if err != nil {
		return nil, fmt.Errorf("archive journey: %w", err)
	}
	if ct.RowsAffected() == 0 {
		return nil, fmt.Errorf("journey %q: %w", id, ErrNotFound)
	}
	return JourneyByID(ctx, db, id, 0)
}

// MissingTemplates lists the templates of ids that do not exist, in the order given.
func MissingTemplates(ctx context.Context, db DB, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, `SELECT t.id FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n)
		WHERE NOT EXISTS (SELECT 1 FROM email_templates e WHERE e.id = t.id) ORDER BY t.n`, ids)
	if err != nil {
		return nil, fmt.Errorf("look up templates: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up templates: %w", err)
	}
	return out, nil
}

// JourneyStats are a journey's counts from the CRM: its runs by how they ended, its goals
// met, and what its email steps' messages did.
type JourneyStats struct {
	// Entered counts runs started (re-entries too); the others count them by status.
	Entered   int64 `json:"entered"`
	Running   int64 `json:"running"`
	Completed int64 `json:"completed"`
	Exited    int64 `json:"exited"`
	Failed    int64 `json:"failed"`
	Cancelled int64 `json:"cancelled"`
	// Ended counts runs that closed without saying how (terminated in Temporal by hand).
	Ended int64 `json:"ended"`
	// Goals counts, per goal, the runs that met it.
	Goals  map[string]int64 `json:"goals"`
	Emails []EmailStepStats `json:"emails"`
}

// EmailStepStats counts the messages one send_email step sent, and of those, how many were
// opened, clicked and unsubscribed from (each message counted once, however often).
type EmailStepStats struct {
	Step         string `json:"step"`
	Template     string `json:"template"`
	Sent         int64  `json:"sent"`
	Opened       int64  `json:"opened"`
	Clicked      int64  `json:"clicked"`
	Unsubscribed int64  `json:"unsubscribed"`
}

// Stats reads a journey's counts.
func Stats(ctx context.Context, db DB, journeyID string) (*JourneyStats, error) {
	s := &JourneyStats{Goals: map[string]int64{}, Emails: []EmailStepStats{}}
	rows, err := db.Query(ctx, `SELECT status, count(*) FROM journey_entries WHERE journey_id = $1 GROUP BY status`, journeyID)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	byStatus := map[string]*int64{"running": &s.Running, "completed": &s.Completed, "exited": &s.Exited,
		"failed": &s.Failed, "cancelled": &s.Cancelled, "ended": &s.Ended}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count runs: %w", err)
		}
		s.Entered += n
		if p := byStatus[status]; p != nil {
			*p += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT goal_id, count(*) FROM goal_completions WHERE journey_id = $1 GROUP BY goal_id`, journeyID)
	if err != nil {
		return nil, fmt.Errorf("count goals: %w", err)
	}
	for rows.Next() {
		var goal string
		var n int64
		if err := rows.Scan(&goal, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count goals: %w", err)
		}
		s.Goals[goal] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count goals: %w", err)
	}
	rows, err = db.Query(ctx, `
		SELECT m.step_id, m.template, count(*),
		       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events e WHERE e.contact_id = m.contact_id AND e.name = 'email_opened' AND e.properties ->> 'message_id' = m.id::text)),
		       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events e WHERE e.contact_id = m.contact_id AND e.name = 'email_clicked' AND e.properties ->> 'message_id' = m.id::text)),
		       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events e WHERE e.contact_id = m.contact_id AND e.name = 'unsubscribed' AND e.properties ->> 'message_id' = m.id::text))
		FROM email_messages m
		WHERE m.journey_id = $1 AND m.status = 'sent'
		GROUP BY m.step_id, m.template ORDER BY m.step_id, m.template`, journeyID)
	if err != nil {
		return nil, fmt.Errorf("count emails: %w", err)
	}
	if s.Emails, err = pgx.CollectRows(rows, pgx.RowToStructByPos[EmailStepStats]); err != nil {
		return nil, fmt.Errorf("count emails: %w", err)
	}
	return s, nil
}

// Migration is a move of a journey's runs in flight from one version to another: a contact
// waiting at a step of Map's keys continues at the step it names (Default, when set, for the
// steps Map leaves out).
type Migration struct {
	ID         int64             `json:"id"`
	JourneyID  string            `json:"journey"`
	From       int               `json:"from"`
	To         int               `json:"to"`
	Map        map[string]string `json:"map"`
	Default    string            `json:"default,omitempty"`
	Status     string            `json:"status"` // running or done
	Found      int               `json:"found"`
	Signalled  int               `json:"signalled"`
	Failed     int               `json:"failed"`
	LastError  string            `json:"last_error,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
}

const migrationColumns = `id, journey_id, from_version, to_version, step_map, default_step, status, found, signalled, failed,
	last_error, created_at, updated_at, finished_at`

func scanMigration(row pgx.Row) (*Migration, error) {
	m := &Migration{}
	var raw []byte
	err := row.Scan(&m.ID, &m.JourneyID, &m.From, &m.To, &raw, &m.Default, &m.Status, &m.Found, &m.Signalled, &m.Failed,
		&m.LastError, &m.CreatedAt, &m.UpdatedAt, &m.FinishedAt)
	if err != nil {
		return nil, err
	}
	return m, json.Unmarshal(raw, &m.Map)
}

// CreateMigration records a migration about to be applied.
func CreateMigration(ctx context.Context, db DB, m Migration) (*Migration, error) {
	out, err := scanMigration(db.QueryRow(ctx, `INSERT INTO journey_migrations (journey_id, from_version, to_version, step_map, default_step)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+migrationColumns, m.JourneyID, m.From, m.To, m.Map, m.Default))
	if err != nil {
		return nil, fmt.Errorf("record migration: %w", err)
	}
	return out, nil
}

// MigrationByID reads one of a journey's migrations.
func MigrationByID(ctx context.Context, db DB, journeyID string, id int64) (*Migration, error) {
	m, err := scanMigration(db.QueryRow(ctx, `SELECT `+migrationColumns+` FROM journey_migrations WHERE journey_id = $1 AND id = $2`, journeyID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("migration %d of journey %q: %w", id, journeyID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read migration: %w", err)
	}
	return m, nil
}

// MigrationProgress records how far applying a migration got; done marks it finished.
// Resuming starts a new pass: its counts replace the last pass's.
func MigrationProgress(ctx context.Context, db DB, id int64, found, signalled, failed int, lastError string, done bool) error {
	_, err := db.Exec(ctx, `UPDATE journey_migrations SET found = $2, signalled = $3, failed = $4, last_error = $5,
		status = CASE WHEN $6 THEN 'done' ELSE 'running' END, finished_at = CASE WHEN $6 THEN now() END, updated_at = now()
		WHERE id = $1`, id, found, signalled, failed, lastError, done)
	if err != nil {
		return fmt.Errorf("record migration progress: %w", err)
	}
	return nil
}

// MoveEnrollment records that a contact's run (by the first run id of its chain) continues on
// another version, so events are routed by that version's interests.
func MoveEnrollment(ctx context.Context, db DB, journeyID string, contactID int64, runID string, version int) error {
	if _, err := db.Exec(ctx, `UPDATE enrollments SET version = $4 WHERE journey_id = $1 AND contact_id = $2 AND run_id = $3`,
		journeyID, contactID, runID, version); err != nil {
		return fmt.Errorf("move enrollment: %w", err)
	}
	return nil
}
