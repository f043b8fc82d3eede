package crm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultQueryTimeout bounds each statement of a condition query (a count, a page of members,
// a contact's check) when Env.Timeout is zero: an API-driven count answers within it or says
// the condition is too expensive, and a check never holds a worker or a dispatcher longer.
const DefaultQueryTimeout = 5 * time.Second

// ErrQueryTimeout means PostgreSQL stopped a condition query at its time limit: the condition
// is too expensive to answer in time over the data there is (not a database fault).
var ErrQueryTimeout = errors.New("the query took longer than its time limit")

// timeout is the statement timeout the environment asks for.
func (e Env) timeout() time.Duration {
	if e.Timeout > 0 {
		return e.Timeout
	}
	return DefaultQueryTimeout
}

// bounded runs fn in a transaction whose statements PostgreSQL stops after timeout
// (statement_timeout, planning included). When ctx ends mid-statement, pgx sends PostgreSQL a
// cancel request before dropping the connection, so the server stops as well
// (TestACancelledQueryStopsOnTheServer holds it to that).
//
// Given a transaction, bounded sets the timeout for its own statements and puts the old one
// back; given a pool, it begins a transaction of its own.
func bounded(ctx context.Context, db DB, timeout time.Duration, fn func(tx pgx.Tx) error) error {
	ms := strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
	var err error
	switch d := db.(type) {
	case pgx.Tx:
		var old string
		if err := d.QueryRow(ctx, `SELECT current_setting('statement_timeout'), set_config('statement_timeout', $1, true)`, ms).Scan(&old, nil); err != nil {
			return queryError(ctx, fmt.Errorf("set statement timeout: %w", err), timeout)
		}
		err = fn(d)
		if ctx.Err() == nil {
			// After a failed statement the transaction refuses this too; it is over anyway.
			if _, rerr := d.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`, old); err == nil {
				err = rerr
			}
		}
	case interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}:
		// One round trip for both: a simple-protocol query may hold two statements.
		err = pgx.BeginTxFunc(ctx, d, pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL statement_timeout = " + ms}, fn)
	default:
		err = WithTx(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`, ms); err != nil {
				return err
			}
			return fn(tx)
		})
	}
	return queryError(ctx, err, timeout)
}

// queryError maps PostgreSQL's "canceling statement" to ErrQueryTimeout when it was the time
// limit (not the caller's context) that stopped the statement.
func queryError(ctx context.Context, err error, timeout time.Duration) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// The caller gave up and the pool cancelled the statement on the server: say so.
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" { // query_canceled
		return fmt.Errorf("%w of %s", ErrQueryTimeout, timeout)
	}
	return err
}
