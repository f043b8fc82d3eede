package crm

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/journey"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key that serialises migrations when several worker and
// starter replicas start at once.
const migrationLock = 0x636169726e // "cairn"

// Migrate applies every embedded migration not yet applied, each in its own transaction,
// and records it in schema_migrations.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := migrate(ctx, pool, 0); err != nil {
		return err
	}
	if err := refreshInterests(ctx, pool); err != nil {
		return err
	}
	return addMissingFieldColumns(ctx, pool)
}

// refreshInterests recomputes what each stored journey version listens for, from its
// definition, with today's rules: the routing of events to runs improves for versions
// applied before (a field test now hears every change of its field, not only identify).
func refreshInterests(ctx context.Context, db DB) error {
	rows, err := db.Query(ctx, `SELECT journey_id, version, definition, interests, trigger_events FROM journey_versions`)
	if err != nil {
		return fmt.Errorf("read journey versions: %w", err)
	}
	type change struct {
		id                 string
		version            int
		interests, trigger []string
	}
	var changes []change
	for rows.Next() {
		var c change
		var def journey.Journey
		var interests, trigger []string
		if err := rows.Scan(&c.id, &c.version, &def, &interests, &trigger); err != nil {
			rows.Close()
			return fmt.Errorf("read journey versions: %w", err)
		}
		c.interests, c.trigger = def.Interests(), def.TriggerEvents()
		if !slices.Equal(c.interests, interests) || !slices.Equal(c.trigger, trigger) {
			changes = append(changes, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read journey versions: %w", err)
	}
	for _, c := range changes {
		if _, err := db.Exec(ctx, `UPDATE journey_versions SET interests = $3, trigger_events = $4 WHERE journey_id = $1 AND version = $2`,
			c.id, c.version, c.interests, c.trigger); err != nil {
			return fmt.Errorf("refresh journey %s v%d: %w", c.id, c.version, err)
		}
	}
	return nil
}

// migrate applies the migrations up to version upTo (all when 0).
func migrate(ctx context.Context, pool *pgxpool.Pool, upTo int) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	return applyMigrations(ctx, conn, upTo)
}

// applyMigrations applies, on conn, the migrations up to upTo (all when 0) not yet recorded
// in the schema the connection's search_path names, each in a transaction of its own (a
// savepoint when conn is a transaction).
func applyMigrations(ctx context.Context, conn DB, upTo int) error {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for _, path := range names {
		name := strings.TrimPrefix(path, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", name)
		}
		if upTo > 0 && version > upTo {
			break
		}
		sql, err := migrationFiles.ReadFile(path)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, version, name)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			_, err = tx.Exec(ctx, string(sql))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}
