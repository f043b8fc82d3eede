package crm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Scratch turns tx into a throwaway CRM: a schema of its own, migrated, holding a copy of the
// definitions of the CRM tx was opened on (email templates, pipelines and their stages,
// scoring rules, field definitions, custom object types and their sources, the journeys' ids;
// none when it holds no CRM), and no
// contact. Every statement on tx
// afterwards reads and writes that schema alone; rolling tx back leaves nothing behind, in
// either. A simulation runs journeys against it.
func Scratch(ctx context.Context, tx pgx.Tx) error {
	var from string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&from); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "cairn_scratch_" + hex.EncodeToString(b)
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE SCHEMA `+q); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, q); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	if err := applyMigrations(ctx, tx, 0); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	src := pgx.Identifier{from}.Sanitize()
	var cairn bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, src+".schema_migrations").Scan(&cairn); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	if !cairn {
		return nil // a database without Cairn's CRM: nothing to copy
	}
	for _, copy := range []string{
		`INSERT INTO email_templates (id, subject, html, text, updated_at) SELECT id, subject, html, text, updated_at FROM %s.email_templates`,
		`INSERT INTO pipelines (id, name, updated_at) SELECT id, name, updated_at FROM %s.pipelines`,
		`INSERT INTO stages (pipeline_id, id, name, position) SELECT pipeline_id, id, name, position FROM %s.stages`,
		`INSERT INTO scoring_rules SELECT * FROM %s.scoring_rules`,
		// Definitions without their columns: the scratch contacts table has none, and a field's
		// tests read traits then, with the same answers.
		`INSERT INTO field_definitions (name, type, label, created_at) SELECT name, type, label, created_at FROM %s.field_definitions`,
		`INSERT INTO journeys (id) SELECT id FROM %s.journeys`,
		`INSERT INTO object_types (id, name, schema, document, created_at, updated_at) SELECT id, name, schema, document, created_at, updated_at FROM %s.object_types`,
		`INSERT INTO object_sources (event, type, id_property) SELECT event, type, id_property FROM %s.object_sources`,
	} {
		if _, err := tx.Exec(ctx, fmt.Sprintf(copy, src)); err != nil {
			return fmt.Errorf("scratch: copy definitions: %w", err)
		}
	}
	return nil
}
