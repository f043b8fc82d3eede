package simulation

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// serialDB lets the run's activities, which the test environment runs on goroutines of their
// own, share the one transaction the scratch CRM lives in: a statement, a result being read,
// or a nested transaction (a savepoint) holds the connection until it is done.
type serialDB struct {
	mu sync.Mutex
	tx pgx.Tx
}

func (d *serialDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tx.Exec(ctx, sql, args...)
}

func (d *serialDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	d.mu.Lock()
	rows, err := d.tx.Query(ctx, sql, args...)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	return &serialRows{Rows: rows, unlock: sync.OnceFunc(d.mu.Unlock)}, nil
}

func (d *serialDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	d.mu.Lock()
	rows, err := d.tx.Query(ctx, sql, args...)
	if err != nil {
		d.mu.Unlock()
		return errRow{err}
	}
	return &serialRow{rows: rows, unlock: sync.OnceFunc(d.mu.Unlock)}
}

func (d *serialDB) Begin(ctx context.Context) (pgx.Tx, error) {
	d.mu.Lock()
	sub, err := d.tx.Begin(ctx)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	return &serialTx{Tx: sub, unlock: sync.OnceFunc(d.mu.Unlock)}, nil
}

type serialRows struct {
	pgx.Rows
	unlock func()
}

func (r *serialRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.unlock()
	return false
}

func (r *serialRows) Close() {
	r.Rows.Close()
	r.unlock()
}

// serialRow reads one row as pgx's QueryRow does.
type serialRow struct {
	rows   pgx.Rows
	unlock func()
}

func (r *serialRow) Scan(dest ...any) error {
	defer r.unlock()
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type serialTx struct {
	pgx.Tx
	unlock func()
}

func (t *serialTx) Commit(ctx context.Context) error {
	defer t.unlock()
	return t.Tx.Commit(ctx)
}

func (t *serialTx) Rollback(ctx context.Context) error {
	defer t.unlock()
	return t.Tx.Rollback(ctx)
}
