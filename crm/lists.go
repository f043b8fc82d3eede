package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lists of what the CRM holds, one page at a time in key order: a page starts after the last
// key of the previous one (keyset pagination), so pages stay fast however far in and never
// skip or repeat a row when rows are added meanwhile.

// JourneySummary is a journey as lists show it: its newest version.
type JourneySummary struct {
	ID         string     `json:"id"`
	Name       string     `json:"name,omitempty"`
	Version    int        `json:"version"`
	Paused     bool       `json:"paused"`
	ArchivedAt *time.Time `json:"archived_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// ListJourneys lists journeys by id after the given one.
func ListJourneys(ctx context.Context, db DB, after string, limit int) ([]JourneySummary, error) {
	rows, err := db.Query(ctx, `SELECT j.id, COALESCE(v.definition ->> 'name', ''), v.version, j.paused, j.archived_at, j.created_at, j.updated_at
		FROM journeys j
		JOIN LATERAL (SELECT version, definition FROM journey_versions WHERE journey_id = j.id ORDER BY version DESC LIMIT 1) v ON true
		WHERE j.id > $1 ORDER BY j.id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list journeys: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[JourneySummary])
	if err != nil {
		return nil, fmt.Errorf("list journeys: %w", err)
	}
	return out, nil
}

// VersionSummary is one version of a journey as lists show it.
type VersionSummary struct {
	Version   int       `json:"version"`
	Digest    string    `json:"digest"`
	Steps     int       `json:"steps"`
	CreatedAt time.Time `json:"created_at"`
}

// JourneyVersions lists a journey's versions after the given one, oldest first; ErrNotFound
// when there is no such journey.
func JourneyVersions(ctx context.Context, db DB, id string, after, limit int) ([]VersionSummary, error) {
	rows, err := db.Query(ctx, `SELECT v.version, v.digest, jsonb_array_length(v.definition -> 'steps'), v.created_at
		FROM journey_versions v WHERE v.journey_id = $1 AND v.version > $2 ORDER BY v.version LIMIT $3`, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[VersionSummary])
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	if len(out) == 0 {
		if _, err := JourneyByID(ctx, db, id, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ContactSummary is a contact as lists show it.
type ContactSummary struct {
	ID         int64     `json:"id"`
	ExternalID string    `json:"external_id"`
	Email      string    `json:"email,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ListContacts lists contacts by Cairn's number after the given one.
func ListContacts(ctx context.Context, db DB, after int64, limit int) ([]ContactSummary, error) {
	rows, err := db.Query(ctx, `SELECT id, external_id, COALESCE(email, ''), created_at, updated_at
		FROM contacts WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ContactSummary])
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	return out, nil
}

// ListSegments lists segments by id after the given one.
func ListSegments(ctx context.Context, db DB, after string, limit int) ([]Segment, error) {
	rows, err := db.Query(ctx, `SELECT id, name, condition FROM segments WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	defer rows.Close()
	out := []Segment{}
	for rows.Next() {
		var s Segment
		var raw []byte
		if err := rows.Scan(&s.ID, &s.Name, &raw); err != nil {
			return nil, fmt.Errorf("list segments: %w", err)
		}
		if err := json.Unmarshal(raw, &s.Condition); err != nil {
			return nil, fmt.Errorf("segment %s: %w", s.ID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// TemplateSummary is an email template as lists show it.
type TemplateSummary struct {
	ID        string    `json:"id"`
	Subject   string    `json:"subject"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ListTemplates lists email templates by id after the given one.
func ListTemplates(ctx context.Context, db DB, after string, limit int) ([]TemplateSummary, error) {
	rows, err := db.Query(ctx, `SELECT id, subject, updated_at FROM email_templates WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[TemplateSummary])
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return out, nil
}

// ListFields lists the defined custom fields by name after the given one.
func ListFields(ctx context.Context, db DB, after string, limit int) ([]FieldDefinition, error) {
	rows, err := db.Query(ctx, `SELECT name, type, label FROM field_definitions WHERE name > $1 ORDER BY name LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list fields: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FieldDefinition])
	if err != nil {
		return nil, fmt.Errorf("list fields: %w", err)
	}
	return out, nil
}

// ListPipelines lists pipelines, with their stages in order, by id after the given one.
func ListPipelines(ctx context.Context, db DB, after string, limit int) ([]Pipeline, error) {
	rows, err := db.Query(ctx, `SELECT p.id, p.name, p.updated_at,
			COALESCE((SELECT jsonb_agg(jsonb_build_object('id', s.id, 'name', s.name, 'position', s.position) ORDER BY s.position)
			          FROM stages s WHERE s.pipeline_id = p.id), '[]')
		FROM pipelines p WHERE p.id > $1 ORDER BY p.id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	defer rows.Close()
	out := []Pipeline{}
	for rows.Next() {
		var p Pipeline
		var raw []byte
		if err := rows.Scan(&p.ID, &p.Name, &p.UpdatedAt, &raw); err != nil {
			return nil, fmt.Errorf("list pipelines: %w", err)
		}
		if err := json.Unmarshal(raw, &p.Stages); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", p.ID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
