package crm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

// lockContacts holds an exclusive lock on contacts until the test ends (or release is
// called), so that any query reading contacts waits: a query as slow as the test wants.
func lockContacts(t *testing.T, ctx context.Context, s *pgxpool.Pool) (release func()) {
	t.Helper()
	tx, err := s.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	release = func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }
	t.Cleanup(release)
	return release
}

// waiting counts the statements waiting for the lock on contacts.
func waiting(t *testing.T, ctx context.Context, s *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE relation = 'contacts'::regclass AND NOT granted`).Scan(&n))
	return n
}

func TestConditionQueriesPastTheirTimeLimitFailWithErrQueryTimeout(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "a", Traits: map[string]any{"plan": "pro"}, Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	c, err := crm.ContactByExternalID(ctx, s, "a")
	require.NoError(t, err)
	cond, err := journey.DecodeCondition([]byte("{field: plan, equals: pro}"))
	require.NoError(t, err)
	lockContacts(t, ctx, s)
	env := crm.Env{Now: time.Now(), Timeout: 200 * time.Millisecond}

	_, err = crm.CountMatching(ctx, s, *cond, env)
	require.ErrorIs(t, err, crm.ErrQueryTimeout)
	require.ErrorContains(t, err, "200ms")
	_, err = crm.SegmentContacts(ctx, s, *cond, env, 0, 10)
	require.ErrorIs(t, err, crm.ErrQueryTimeout)
	_, err = crm.Matches(ctx, s, c.ID, *cond, env)
	require.ErrorIs(t, err, crm.ErrQueryTimeout)
	require.Zero(t, waiting(t, ctx, s), "nothing left waiting")
}

// TestACancelledQueryStopsOnTheServer: when the caller gives up (an HTTP client goes away),
// PostgreSQL stops the statement too. pgx only drops the connection, and a backend busy
// counting does not look at its connection until it has an answer to send: it would carry on
// until its time limit with nobody waiting for the answer. Cairn's pools (crm.PoolConfig) send
// PostgreSQL a cancel request instead.
func TestACancelledQueryStopsOnTheServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := crm.PoolConfig(pgtest.URL(t))
	require.NoError(t, err)
	app := fmt.Sprintf("cairn-cancel-%d", time.Now().UnixNano())
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	s, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, crm.Migrate(ctx, s))
	// A count that keeps a backend busy for many seconds: a thousand text tests on each of
	// 200 contacts holding 40 kB notes.
	_, err = s.Exec(ctx, `INSERT INTO contacts (external_id, traits)
		SELECT 'c' || i, jsonb_build_object('note', repeat(md5(i::text), 1250)) FROM generate_series(1, 200) i`)
	require.NoError(t, err)
	tests := make([]string, 1000)
	for i := range tests {
		tests[i] = fmt.Sprintf("{field: note, contains: zz%d}", i)
	}
	cond, err := journey.DecodeCondition([]byte("{any: [" + strings.Join(tests, ", ") + "]}"))
	require.NoError(t, err)
	busy := func() int {
		var n int
		require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'
			AND query LIKE 'SELECT count(*) FROM contacts%'`, app).Scan(&n))
		return n
	}

	qctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := crm.CountMatching(qctx, s, *cond, crm.Env{Now: time.Now(), Timeout: time.Hour})
		done <- err
	}()
	require.Eventually(t, func() bool { return busy() == 1 }, 10*time.Second, 10*time.Millisecond, "the count runs")
	time.Sleep(100 * time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Eventually(t, func() bool { return busy() == 0 }, 3*time.Second, 10*time.Millisecond, "the server stopped counting")
}

// TestATimeLimitInsideACallersTransactionIsPutBack: a check run in someone else's transaction
// (the dispatcher's) bounds its own statement and leaves the transaction's setting as it was.
func TestATimeLimitInsideACallersTransactionIsPutBack(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "a", Traits: map[string]any{"plan": "pro"}, Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	c, err := crm.ContactByExternalID(ctx, s, "a")
	require.NoError(t, err)
	cond, err := journey.DecodeCondition([]byte("{field: plan, equals: PRO}"))
	require.NoError(t, err)
	err = crm.WithTx(ctx, s, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '7s'`); err != nil {
			return err
		}
		ok, err := crm.Matches(ctx, tx, c.ID, *cond, crm.Env{Now: time.Now()})
		if err != nil || !ok {
			return errors.Join(err, errors.New("no match"))
		}
		var setting string
		if err := tx.QueryRow(ctx, `SHOW statement_timeout`).Scan(&setting); err != nil {
			return err
		}
		require.Equal(t, "7s", setting)
		return nil
	})
	require.NoError(t, err)
}
