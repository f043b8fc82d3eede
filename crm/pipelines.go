package crm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Pipeline is a deal pipeline with its stages in order.
type Pipeline struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Stages    []Stage   `json:"stages"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Stage is one step of a pipeline; Position counts from 1.
type Stage struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Position int    `json:"position"`
}

// PutPipeline names a pipeline and orders its stages as listed. Stages it already has that
// the list leaves out stay, after the listed ones in their old order: deals may be in them.
func PutPipeline(ctx context.Context, db DB, p Pipeline) (*Pipeline, error) {
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO pipelines (id, name) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET name = $2, updated_at = now()`, p.ID, p.Name); err != nil {
			return fmt.Errorf("put pipeline: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE`, p.ID); err != nil {
			return fmt.Errorf("lock pipeline: %w", err)
		}
		old, err := stages(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		listed := map[string]bool{}
		order := make([]Stage, 0, len(p.Stages)+len(old))
		for _, st := range p.Stages {
			listed[st.ID] = true
			order = append(order, st)
		}
		for _, st := range old {
			if !listed[st.ID] {
				order = append(order, st)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM stages WHERE pipeline_id = $1`, p.ID); err != nil {
			return fmt.Errorf("reorder stages: %w", err)
		}
		for i, st := range order {
			if _, err := tx.Exec(ctx, `INSERT INTO stages (pipeline_id, id, name, position) VALUES ($1, $2, $3, $4)`,
				p.ID, st.ID, st.Name, i+1); err != nil {
				return fmt.Errorf("put stage %s: %w", st.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return PipelineByID(ctx, db, p.ID)
}

// Pipeline returns a pipeline with its stages in order.
func PipelineByID(ctx context.Context, db DB, id string) (*Pipeline, error) {
	p := &Pipeline{ID: id}
	err := db.QueryRow(ctx, `SELECT name, updated_at FROM pipelines WHERE id = $1`, id).Scan(&p.Name, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pipeline %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read pipeline: %w", err)
	}
	if p.Stages, err = stages(ctx, db, id); err != nil {
		return nil, err
	}
	return p, nil
}

func stages(ctx context.Context, db DB, pipeline string) ([]Stage, error) {
	rows, err := db.Query(ctx, `SELECT id, name, position FROM stages WHERE pipeline_id = $1 ORDER BY position`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("read stages: %w", err)
	}
	defer rows.Close()
	out := []Stage{}
	for rows.Next() {
		var st Stage
		if err := rows.Scan(&st.ID, &st.Name, &st.Position); err != nil {
			return nil, fmt.Errorf("read stages: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// ensureStage makes sure a deal's pipeline and stage exist, appending a new stage last, so a
// deal naming a stage nobody defined yet is kept, not refused.
func ensureStage(ctx context.Context, db DB, pipeline, stage string) error {
	var known bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stages WHERE pipeline_id = $1 AND id = $2)`, pipeline, stage).Scan(&known); err != nil {
		return fmt.Errorf("find stage: %w", err)
	}
	if known {
		return nil
	}
	if _, err := db.Exec(ctx, `INSERT INTO pipelines (id) VALUES ($1) ON CONFLICT DO NOTHING`, pipeline); err != nil {
		return fmt.Errorf("create pipeline %s: %w", pipeline, err)
	}
	// Writers adding stages to one pipeline take turns, so two cannot both take the last place.
	if _, err := db.Exec(ctx, `SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE`, pipeline); err != nil {
		return fmt.Errorf("lock pipeline %s: %w", pipeline, err)
	}
	_, err := db.Exec(ctx, `INSERT INTO stages (pipeline_id, id, position)
		SELECT $1, $2, COALESCE(max(position), 0) + 1 FROM stages WHERE pipeline_id = $1
		ON CONFLICT (pipeline_id, id) DO NOTHING`, pipeline, stage)
	if err != nil {
		return fmt.Errorf("create stage %s/%s: %w", pipeline, stage, err)
	}
	return nil
}
