package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/cairnhq/cairn/telemetry"
)

// Every metric, Cairn's and the Temporal SDK's, passes Prometheus' own linter (the checks
// `promtool check metrics` makes): names, units, _total on counters, help text.
func TestEveryMetricPassesPrometheusLint(t *testing.T) {
	telemetry.EventsAccepted.WithLabelValues("segment").Inc()
	telemetry.EventsDuplicate.WithLabelValues("segment").Inc()
	telemetry.EventsRefused.WithLabelValues("segment", "unauthorized").Inc()
	telemetry.AcceptDuration.WithLabelValues("segment").Observe(0.01)
	telemetry.HTTPRequests.WithLabelValues("POST", "POST /v1/track", "200").Inc()
	telemetry.DispatchLag.Observe(0.2)
	telemetry.EventsDispatched.Inc()
	telemetry.DispatchFailures.WithLabelValues("event").Inc()
	telemetry.DeadLettered.Inc()
	telemetry.RunsStarted.WithLabelValues("welcome").Inc()
	telemetry.Steps.WithLabelValues("send_email", telemetry.StepDone).Inc()
	telemetry.Sends.WithLabelValues("email", "sent").Inc()
	telemetry.ProviderCallDuration.WithLabelValues("smtp", "ok").Observe(0.05)
	telemetry.SegmentQueryDuration.WithLabelValues("count").Observe(0.003)
	telemetry.WatchQueue(func(context.Context) (int64, int64, error) { return 3, 1, nil })
	defer telemetry.WatchQueue(nil)
	sdk := telemetry.TemporalMetrics()
	sdk.Counter("temporal_request").Inc(1)
	sdk.Timer("temporal_workflow_task_schedule_to_start_latency").Record(1)
	sdk.Gauge("temporal_sticky_cache_size").Update(4)

	problems, err := testutil.GatherAndLint(telemetry.Registry)
	require.NoError(t, err)
	require.Empty(t, problems)
	n, err := testutil.GatherAndCount(telemetry.Registry, "cairn_dispatch_queue_events", "cairn_dead_letter_events",
		"temporal_request_total", "temporal_workflow_task_schedule_to_start_latency_seconds", "temporal_sticky_cache_size")
	require.NoError(t, err)
	require.Equal(t, 5, n)
}

func TestReadyzNamesTheFailingCheckAndExcludeLeavesItOut(t *testing.T) {
	h := telemetry.Readyz(
		telemetry.Check{Name: "database", Run: func(context.Context) error { return nil }},
		telemetry.Check{Name: "temporal", Run: func(context.Context) error { return errors.New("connection refused") }},
	)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.NewDecoder(rec.Body).Decode(&body))
	require.Equal(t, "unavailable", body.Status)
	require.Equal(t, map[string]string{"database": "ok", "temporal": "connection refused"}, body.Checks)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz?exclude=temporal", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, strings.Contains(rec.Body.String(), `"database":"ok"`))
}

func TestAStoredTraceParentBecomesTheParentOfTheNextSpan(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := trace.SpanContextFromContext(telemetry.WithTraceParent(context.Background(), tp))
	require.True(t, sc.IsRemote() && sc.IsSampled())
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sc.TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", sc.SpanID().String())
	require.False(t, trace.SpanContextFromContext(telemetry.WithTraceParent(context.Background(), "garbage")).IsValid())
	require.False(t, trace.SpanContextFromContext(telemetry.WithTraceParent(context.Background(), "")).IsValid())
}
