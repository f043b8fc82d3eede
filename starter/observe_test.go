package starter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/telemetry"
)

// syncBuffer is a log sink the server's goroutines write to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &rec), l)
		out = append(out, rec)
	}
	return out
}

func TestEachRequestGetsAnIDALogLineAndCountsTowardIngestionMetrics(t *testing.T) {
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(context.Background(), pool))
	logs := &syncBuffer{}
	api := &starter.API{DB: pool, WriteKeys: []string{writeKey}, AdminKey: adminKey,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	post := func(key, id, body string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/track", strings.NewReader(body))
		req.SetBasicAuth(key, "")
		if id != "" {
			req.Header.Set(starter.RequestIDHeader, id)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	accepted := testutil.ToFloat64(telemetry.EventsAccepted.WithLabelValues("segment"))
	dup := testutil.ToFloat64(telemetry.EventsDuplicate.WithLabelValues("segment"))
	refused := testutil.ToFloat64(telemetry.EventsRefused.WithLabelValues("segment", "unauthorized"))
	invalid := testutil.ToFloat64(telemetry.EventsRefused.WithLabelValues("segment", "invalid_request"))

	resp := post(writeKey, "abc-123", `{"userId":"ida","event":"Signed Up","messageId":"obs-1"}`)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "abc-123", resp.Header.Get(starter.RequestIDHeader), "a client's plain id is kept")
	require.Equal(t, 200, post(writeKey, "", `{"userId":"ida","event":"Signed Up","messageId":"obs-1"}`).StatusCode)
	resp = post("wk_wrong", "bad id with spaces", `{"userId":"ida","event":"Signed Up"}`)
	require.Equal(t, 401, resp.StatusCode)
	require.Len(t, resp.Header.Get(starter.RequestIDHeader), 16, "an unusable id is replaced")
	require.Equal(t, 400, post(writeKey, "", `{"userId":"ida"}`).StatusCode)

	require.Equal(t, accepted+1, testutil.ToFloat64(telemetry.EventsAccepted.WithLabelValues("segment")))
	require.Equal(t, dup+1, testutil.ToFloat64(telemetry.EventsDuplicate.WithLabelValues("segment")))
	require.Equal(t, refused+1, testutil.ToFloat64(telemetry.EventsRefused.WithLabelValues("segment", "unauthorized")))
	require.Equal(t, invalid+1, testutil.ToFloat64(telemetry.EventsRefused.WithLabelValues("segment", "invalid_request")))

	lines := logs.lines(t)
	require.Len(t, lines, 4, "one line per request")
	require.Equal(t, map[string]any{"msg": "http request", "level": "INFO", "request_id": "abc-123", "method": "POST",
		"route": "POST /v1/track", "status": float64(200)}, pick(lines[0], "msg", "level", "request_id", "method", "route", "status"))
	require.Equal(t, "WARN", lines[2]["level"], "refused authentication")
	require.Equal(t, "unauthorized", lines[2]["error_code"])
	require.Equal(t, "INFO", lines[3]["level"], "a client's mistake")

	for _, path := range []string{"/livez", "/readyz", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, path)
	}
}

func pick(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}
