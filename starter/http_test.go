package starter_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	writeKey = "wk_test"
	adminKey = "ak_test"
)

type fixture struct {
	ctx   context.Context
	store *pgxpool.Pool
	srv   *httptest.Server
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	store := pool
	api := &starter.API{DB: store, WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: discard()}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &fixture{ctx: ctx, store: store, srv: srv}
}

type reply struct {
	Status int
	Body   map[string]any
}

func (f *fixture) do(t *testing.T, method, path, body string, auth func(*http.Request)) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "every reply is JSON: %s", raw)
	r := reply{Status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, &r.Body), "body: %s", raw)
	return r
}

func basic(key string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(key, "") } }
func bearer(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}

func errorOf(t *testing.T, r reply) map[string]any {
	t.Helper()
	e, ok := r.Body["error"].(map[string]any)
	require.True(t, ok, "an error body: %v", r.Body)
	return e
}

func (f *fixture) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, f.store.QueryRow(f.ctx, "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func TestTrackStoresContactAndEventAndAnswersLikeSegment(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Signed Up","properties":{"plan":"pro"},
		"context":{"traits":{"email":"ada@example.com"}},"messageId":"m-1","timestamp":"2026-11-26T10:00:00Z","sentAt":"2026-11-26T10:00:05Z"}`, basic(writeKey))
	require.Equal(t, 200, r.Status)
	require.Equal(t, true, r.Body["success"])

	c, err := crm.ContactByExternalID(f.ctx, f.store, "ada")
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", c.Email)
	var name, plan string
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT name, properties->>'plan' FROM events`).Scan(&name, &plan))
	require.Equal(t, "Signed Up", name)
	require.Equal(t, "pro", plan)
}

func TestTrackAppliesSegmentClockSkewCorrection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// The client's clock is 1h behind: it says it sent at 09:00 what happened at 08:59.
	sentAt := time.Now().UTC().Add(-time.Hour)
	ts := sentAt.Add(-time.Minute)
	body := `{"userId":"u","event":"e","timestamp":"` + ts.Format(time.RFC3339Nano) + `","sentAt":"` + sentAt.Format(time.RFC3339Nano) + `"}`
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", body, basic(writeKey)).Status)
	var at time.Time
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT occurred_at FROM events`).Scan(&at))
	require.WithinDuration(t, time.Now().Add(-time.Minute), at, 5*time.Second)
}

func TestDuplicateMessageIDRecordsOneEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for i := 0; i < 3; i++ {
		require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Signed Up","messageId":"same"}`, basic(writeKey)).Status)
	}
	require.Equal(t, 1, f.count(t, "events"))
}

func TestIdentifyMergesTraitsIntoTheContact(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"email":"ada@example.com","plan":"pro"}}`, basic(writeKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"plan":"team"}}`, basic(writeKey)).Status)
	c, err := crm.ContactByExternalID(f.ctx, f.store, "ada")
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", c.Email)
	require.Equal(t, "team", c.Traits["plan"])
}

func TestBadIngestionInputGetsAClearErrorAndWritesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cases := []struct {
		name, body string
		auth       func(*http.Request)
		status     int
		mention    string
	}{
		{"malformed JSON", `{"userId":"ada","event":`, basic(writeKey), 400, "malformed JSON"},
		{"no write key", `{"userId":"ada","event":"x"}`, nil, 401, "missing write key"},
		{"wrong write key", `{"userId":"ada","event":"x"}`, basic("nope"), 401, "unknown write key"},
		{"admin key is no write key", `{"userId":"ada","event":"x"}`, basic(adminKey), 401, "unknown write key"},
		{"no event name", `{"userId":"ada"}`, basic(writeKey), 400, "event is required"},
		{"no contact", `{"event":"x"}`, basic(writeKey), 400, "userId or anonymousId"},
		{"properties not an object", `{"userId":"ada","event":"x","properties":[1]}`, basic(writeKey), 400, "properties"},
		{"bad timestamp", `{"userId":"ada","event":"x","timestamp":"yesterday"}`, basic(writeKey), 400, "timestamp"},
		{"oversized body", `{"userId":"ada","event":"x","properties":{"blob":"` + strings.Repeat("a", 600<<10) + `"}}`, basic(writeKey), 413, "larger than"},
		{"empty body", ``, basic(writeKey), 400, "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "POST", "/v1/track", tc.body, tc.auth)
			require.Equal(t, tc.status, r.Status)
			e := errorOf(t, r)
			require.Contains(t, e["message"].(string)+" "+stringOf(e["path"]), tc.mention)
		})
	}
	require.Zero(t, f.count(t, "events"))
	require.Zero(t, f.count(t, "contacts"))
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

func TestJourneyManagementNeedsTheAdminKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	doc := "id: welcome\ntrigger: {event: Signed Up}\nsteps: [{add_tag: new}]"
	r := f.do(t, "PUT", "/v1/journeys/welcome", doc, nil)
	require.Equal(t, 401, r.Status)
	require.Contains(t, errorOf(t, r)["message"], "missing admin API key")

	r = f.do(t, "PUT", "/v1/journeys/welcome", doc, bearer(writeKey))
	require.Equal(t, 403, r.Status)
	require.Contains(t, errorOf(t, r)["message"], "not the admin API key")

	r = f.do(t, "PUT", "/v1/journeys/welcome", doc, basic(adminKey))
	require.Equal(t, 401, r.Status)
	require.Zero(t, f.count(t, "journeys"))

	r = f.do(t, "PUT", "/v1/journeys/welcome", doc, bearer(adminKey))
	require.Equal(t, 201, r.Status)
	require.Equal(t, float64(1), r.Body["version"])

	r = f.do(t, "PUT", "/v1/journeys/welcome", doc, bearer(adminKey))
	require.Equal(t, 200, r.Status, "the same document again makes no new version")
	require.Equal(t, float64(1), r.Body["version"])

	r = f.do(t, "GET", "/v1/journeys/welcome", "", bearer(adminKey))
	require.Equal(t, 200, r.Status)
	require.Equal(t, "welcome", r.Body["id"])
}

func TestInvalidJourneyListsEveryProblemWithItsPathAndStoresNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	doc := `{"id":"welcome","trigger":{"event":"Signed Up"},"steps":[{"add_tag":"a"},{"send_smss":{"to":"x"}},{"wait":"2 dayz"}]}`
	r := f.do(t, "PUT", "/v1/journeys/welcome", doc, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	e := errorOf(t, r)
	probs := e["problems"].([]any)
	require.Len(t, probs, 2)
	require.Equal(t, "steps[1]", probs[0].(map[string]any)["path"])
	require.Contains(t, probs[0].(map[string]any)["message"], `unknown step kind "send_smss"`)
	require.Equal(t, "steps[2].wait", probs[1].(map[string]any)["path"])
	require.Contains(t, probs[1].(map[string]any)["message"], `"2 dayz" is not a duration`)
	require.Zero(t, f.count(t, "journeys"))
	require.Zero(t, f.count(t, "journey_versions"))
}

func TestJourneyWhoseIDDiffersFromTheURLIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "PUT", "/v1/journeys/other", "id: welcome\ntrigger: {event: x}\nsteps: [end]", bearer(adminKey))
	require.Equal(t, 400, r.Status)
	require.Equal(t, "id", errorOf(t, r)["path"])
}

func TestOversizedJourneyIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	doc := "id: big\ntrigger: {event: x}\nname: " + strings.Repeat("a", 2<<20) + "\nsteps: [end]"
	r := f.do(t, "PUT", "/v1/journeys/big", doc, bearer(adminKey))
	require.Equal(t, 413, r.Status)
	require.Zero(t, f.count(t, "journeys"))
}

func TestUnknownEndpointIsAJSON404(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "GET", "/v1/nothing", "", nil)
	require.Equal(t, 404, r.Status)
	require.Contains(t, errorOf(t, r)["message"], "/v1/nothing")
}

func TestDispatcherKeepsEventsQueuedWhileTemporalIsUnreachable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	doc := "id: welcome\ntrigger: {event: Signed Up}\nsteps: [{add_tag: new}]"
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/welcome", doc, bearer(adminKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Signed Up"}`, basic(writeKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Unrelated"}`, basic(writeKey)).Status)

	// A port nothing listens on: every Temporal call fails.
	l, err := (&net.ListenConfig{}).Listen(f.ctx, "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	tc, err := client.NewLazyClient(client.Options{HostPort: addr, Logger: sdkDiscard()})
	require.NoError(t, err)
	defer tc.Close()
	d := &starter.Dispatcher{DB: f.store, Temporal: tc, Logger: discard(), Batch: 10}
	ctx, cancel := context.WithTimeout(f.ctx, 15*time.Second)
	defer cancel()
	n, err := d.DispatchOnce(ctx)
	require.ErrorContains(t, err, "Temporal is unreachable")
	require.Zero(t, n)
	var queued int
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`).Scan(&queued))
	require.Equal(t, 2, queued, "the failed event and the one after it stay queued, in order")
	var attempts int
	var lastError string
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT attempts, last_error FROM events WHERE name = 'Signed Up'`).Scan(&attempts, &lastError))
	require.Equal(t, 1, attempts)
	require.Contains(t, lastError, "signal-with-start journey:welcome:")
	var backingOff bool
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT owner IS NULL AND expires_at > now() FROM dispatch_leases`).Scan(&backingOff))
	require.True(t, backingOff, "the contact backs off; unreachable Temporal is never the event's fault, so it is not dead-lettered")
}

func TestEachWriteKeyIsRateLimitedWithRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	api := &starter.API{DB: pool, WriteKeys: []string{"wk_a", "wk_b"}, AdminKey: adminKey, Logger: discard(), RatePerKey: 1, RateBurst: 3}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	f := &fixture{ctx: ctx, store: pool, srv: srv}
	for i := 0; i < 3; i++ {
		require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"u","event":"e"}`, basic("wk_a")).Status)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/track", strings.NewReader(`{"userId":"u","event":"e"}`))
	req.SetBasicAuth("wk_a", "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 429, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"u","event":"e"}`, basic("wk_b")).Status, "another key has its own budget")
	require.Equal(t, 4, f.count(t, "events"))
}
