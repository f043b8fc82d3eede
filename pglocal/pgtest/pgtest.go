// Package pgtest gives each test its own empty PostgreSQL schema on a real server: the one at
// DATABASE_URL, or a throwaway local cluster started once per test binary.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/pglocal"
)

var baseURL string

// Runner runs a package's tests: *testing.M, or a wrapper that checks something after them.
type Runner interface{ Run() int }

// Main starts a local cluster unless DATABASE_URL is set, runs the tests, and stops it.
// Use it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m Runner) {
	baseURL = os.Getenv("DATABASE_URL")
	if baseURL == "" {
		cluster, err := pglocal.StartTemp(context.Background(), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			os.Exit(2)
		}
		baseURL = cluster.URL
		code := m.Run()
		cluster.Stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

var seq atomic.Int64

// URL creates a fresh schema for t, dropped at cleanup, and returns a connection URL whose
// search_path points at it.
func URL(t testing.TB) string {
	t.Helper()
	if baseURL == "" {
		t.Fatal("pgtest: call pgtest.Main from TestMain")
	}
	schema := fmt.Sprintf("t_%d_%d", time.Now().UnixNano()%1e9, seq.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), baseURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatalf("pgtest: DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Pool opens a pool on a fresh schema (see URL), closed at cleanup.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
