package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/dev/embedded"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/worker"
)

// TestEventsAcceptedWhileTemporalIsDownAreEachDispatchedOnceWhenItReturns posts 1,000 events
// (and some duplicates) with no Temporal server and no worker, then starts both.
func TestEventsAcceptedWhileTemporalIsDownAreEachDispatchedOnceWhenItReturns(t *testing.T) {
	const contacts = 1000
	dbURL := pgtest.URL(t)
	grpcPort := dev.FreePort()
	tc := cluster.Config{Address: fmt.Sprintf("127.0.0.1:%d", grpcPort), Namespace: "default"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	starterDone := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		starterDone <- starter.Run(ctx, starter.Config{Temporal: tc, DatabaseURL: dbURL, HTTPAddr: "127.0.0.1:0", Codec: testCodec,
			WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: quiet(), Ready: ready})
	}()
	s := &system{ctx: context.Background(), url: "http://" + <-ready}
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	s.db = pool

	s.apply(t, "outage", "id: outage\ntrigger: {event: Signed Up}\nsteps: [{add_tag: joined}]")
	for b := 0; b < contacts/100; b++ {
		var msgs []string
		for i := 0; i < 100; i++ {
			n := b*100 + i
			msgs = append(msgs, fmt.Sprintf(`{"type":"track","userId":"c%d","event":"Signed Up","messageId":"m%d"}`, n, n))
		}
		body := `{"batch":[` + strings.Join(msgs, ",") + `]}`
		status, reply := s.call(t, "POST", "/v1/batch", body, asWriter)
		require.Equal(t, 200, status, reply)
		// A client retrying a batch it thinks failed sends the same messages again.
		status, reply = s.call(t, "POST", "/v1/batch", body, asWriter)
		require.Equal(t, 200, status, reply)
	}
	require.Equal(t, contacts, s.count(t, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`), "all accepted, none dispatched")

	// Temporal and the worker come back.
	srv, err := embedded.Start(embedded.Options{Namespace: "default", SearchAttributes: contract.SearchAttributes, GRPCPort: grpcPort, UIPort: -1})
	require.NoError(t, err)
	defer srv.Stop()
	workerDone := make(chan error, 1)
	go func() {
		workerDone <- worker.Run(ctx, worker.Config{Temporal: tc, DatabaseURL: dbURL, Codec: testCodec, Logger: quiet()})
	}()
	cl := dial(t, tc.Address, dbURL, testCodec)
	s.temporal = cl

	start := time.Now()
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'joined'`) == contacts &&
			s.count(t, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`) == 0
	}, 4*time.Minute, 250*time.Millisecond)
	t.Logf("1,000 queued events dispatched and their runs completed %s after Temporal came back", time.Since(start).Round(time.Millisecond))

	var runs *workflowservice.CountWorkflowExecutionsResponse
	require.Eventually(t, func() bool {
		runs, err = cl.CountWorkflow(s.ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: "CairnJourney='outage'"})
		return err == nil && runs.Count == contacts
	}, 30*time.Second, 250*time.Millisecond, "one run per contact, no more")

	// Each run heard its trigger exactly once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	heard := map[int]int{}
	ids := make(chan int64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				var st contract.State
				if err := cl.GetWorkflow(s.ctx, contract.WorkflowID("outage", id), "").Get(s.ctx, &st); err == nil {
					mu.Lock()
					heard[len(st.Events)]++
					mu.Unlock()
				}
			}
		}()
	}
	rows, err := pool.Query(s.ctx, `SELECT id FROM contacts`)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids <- id
	}
	close(ids)
	wg.Wait()
	require.Equal(t, map[int]int{1: contacts}, heard)
	require.Equal(t, contacts, s.count(t, `SELECT count(*) FROM events WHERE name = 'Signed Up'`), "duplicates were not stored")

	cancel()
	require.NoError(t, <-starterDone)
	require.NoError(t, <-workerDone)
}
