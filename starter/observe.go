package starter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"

	"github.com/cairnhq/cairn/telemetry"
)

// RequestIDHeader carries a request's id: taken from the client when it sends a sane one (a
// proxy's), else made up; sent back on every reply, logged, and set on the request's span.
const RequestIDHeader = "X-Request-Id"

// Ingestion sources, the values of the source label on cairn_events_* metrics.
const (
	sourceSegment  = "segment"
	sourceSigned   = "source"
	sourceForm     = "form"
	sourceCRM      = "crm"
	sourceTracking = "tracking"
	sourceAPI      = "api"
)

// recorder remembers what a handler answered: the status, and the error code and cause that
// writeError and fail leave on it, for the request's log line and metrics.
type recorder struct {
	http.ResponseWriter
	status int
	code   string
	err    error
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// noteError leaves an answered error's code (and, for a server error, its cause) for the log line.
func noteError(w http.ResponseWriter, code string, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.code = code
		if err != nil {
			rec.err = err
		}
	}
}

// requestID is the client's X-Request-Id when it is a plain token of at most 64 characters,
// else 16 random hex digits.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); id != "" && len(id) <= 64 {
		ok := true
		for _, c := range id {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				ok = false
				break
			}
		}
		if ok {
			return id
		}
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// observe wraps the API: one log line per request (route pattern, never the path, which may
// hold a contact's id), its request id, its span's name and attributes, and the HTTP and
// ingestion metrics.
func (a *API) observe(mux *http.ServeMux) http.Handler {
	tracing := telemetry.TracingEnabled()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var span trace.Span
		if tracing {
			// The request's span continues any trace the client sent (traceparent); it is
			// named for the route once the mux has matched one.
			ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span = telemetry.Tracer().Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", r.Method)))
			defer span.End()
			r = r.WithContext(ctx)
		}
		id := requestID(r)
		w.Header().Set(RequestIDHeader, id)
		rec := &recorder{ResponseWriter: w}
		mux.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		took := time.Since(start)
		route := r.Pattern // set by the mux on this request
		if route == "" {
			route = "unmatched"
		}
		status := strconv.Itoa(rec.status)
		telemetry.HTTPRequests.WithLabelValues(r.Method, route, status).Inc()
		if source := a.sources[route]; source != "" {
			switch {
			case rec.status < 300:
				telemetry.AcceptDuration.WithLabelValues(source).Observe(took.Seconds())
			case rec.status >= 400:
				reason := rec.code
				if reason == "" {
					reason = "http_" + status
				}
				telemetry.EventsRefused.WithLabelValues(source, reason).Inc()
			}
		}
		if span != nil && span.IsRecording() {
			span.SetName(route)
			span.SetAttributes(attribute.String("http.route", route), attribute.String("cairn.request_id", id),
				attribute.Int("http.response.status_code", rec.status))
			if rec.code != "" {
				span.SetAttributes(attribute.String("cairn.error_code", rec.code))
			}
			if rec.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.status))
			}
		}
		a.logRequest(r.Context(), rec, r.Method, route, id, took)
	})
}

// logRequest writes the request's one line: server errors at ERROR (with their cause),
// refused authentication and rate limits at WARN, everything else at INFO.
func (a *API) logRequest(ctx context.Context, rec *recorder, method, route, id string, took time.Duration) {
	level := slog.LevelInfo
	switch {
	case rec.status >= 500:
		level = slog.LevelError
	case rec.status == http.StatusUnauthorized, rec.status == http.StatusForbidden, rec.status == http.StatusTooManyRequests:
		level = slog.LevelWarn
	}
	if !a.Logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("request_id", id), slog.String("method", method), slog.String("route", route),
		slog.Int("status", rec.status), slog.Float64("duration_ms", float64(took.Microseconds())/1000)}
	if rec.code != "" {
		attrs = append(attrs, slog.String("error_code", rec.code))
	}
	if rec.err != nil {
		attrs = append(attrs, slog.String("error", rec.err.Error()))
	}
	a.Logger.LogAttrs(ctx, level, "http request", attrs...)
}

// accepted counts events an ingestion endpoint stored (n) and messages it had stored before (dup).
func (a *API) accepted(r *http.Request, n, dup int) {
	source := a.sources[r.Pattern]
	if source == "" {
		return
	}
	if n > 0 {
		telemetry.EventsAccepted.WithLabelValues(source).Add(float64(n))
	}
	if dup > 0 {
		telemetry.EventsDuplicate.WithLabelValues(source).Add(float64(dup))
	}
}

// readyChecks are the starter's readiness: PostgreSQL answers, and Temporal answers.
func (a *API) readyChecks() []telemetry.Check {
	checks := []telemetry.Check{{Name: "database", Run: func(ctx context.Context) error { return a.DB.Ping(ctx) }}}
	if a.Temporal != nil {
		checks = append(checks, telemetry.Check{Name: "temporal", Run: func(ctx context.Context) error {
			_, err := a.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}})
	}
	return checks
}
