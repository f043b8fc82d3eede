package starter

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/clock"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/telemetry"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
)

// Body size limits. Segment's own API takes 32 KB per message and 500 KB per batch; journeys
// are documents a person writes.
const (
	maxIngestBody  = 512 << 10
	maxJourneyBody = 1 << 20
)

// API is the starter's HTTP interface.
type API struct {
	DB        *pgxpool.Pool
	WriteKeys []string // accepted as the Basic-auth user name on ingestion endpoints
	AdminKey  string   // Bearer token for management endpoints
	// TrackingKey verifies open, click and unsubscribe tokens (the worker signs with the same).
	TrackingKey []byte
	// SourceSecrets maps a signing source's name to its HMAC secret.
	SourceSecrets map[string]string
	// RatePerKey limits requests per second for each write key (0: no limit); bursts of
	// RateBurst are allowed.
	RatePerKey float64
	RateBurst  int
	limits     *limiter
	// AuthFailuresPerMinute limits failed authentications per client address (0: no limit),
	// after a burst of AuthFailureBurst; an address past it gets 429 for any key until a
	// failure is forgiven.
	AuthFailuresPerMinute float64
	AuthFailureBurst      int
	authFailures          *failures
	// TrustedProxies are the networks of reverse proxies whose X-Forwarded-For names the
	// client; from anywhere else, the connection's peer is the client.
	TrustedProxies []netip.Prefix
	// EngagementWindow is how long a repeated open, or click of one link, of the same message
	// counts once (0: DefaultEngagementWindow; negative: every repeat counts).
	EngagementWindow time.Duration
	Logger           *slog.Logger
	// Clock tells the time events are received at (nil: the system clock).
	Clock clock.Clock
	// Temporal, when set, lists a contact's runs from Temporal's visibility; Namespace and
	// TemporalUI (the Web UI's base URL) build links to them.
	Temporal   client.Client
	Namespace  string
	TemporalUI string
	// NoMetrics leaves /metrics off the API: CAIRN_METRICS_ADDR serves it elsewhere.
	NoMetrics bool
	// sources maps each ingestion route pattern to its source label.
	sources map[string]string
	// Codec is the payload codec of Temporal's payloads; erasure destroys contacts' data keys
	// with it. CodecServer, when set, serves Temporal's remote codec protocol under /codec/.
	Codec       *codec.Codec
	CodecServer http.Handler
	// Scheduler keeps campaigns' Temporal Schedules (campaigns.go); nil refuses campaign calls.
	Scheduler Scheduler
	// Background is the context work outliving a request (a migration being applied) runs
	// under (nil: context.Background()); Run sets it to the starter's.
	Background context.Context
	routes     []string
	migrating  sync.Map // migration id → a pass applying it in this process
}

// Now is the API's clock reading.
func (a *API) Now() time.Time { return clock.OrSystem(a.Clock).Now() }

// DefaultEngagementWindow is CAIRN_ENGAGEMENT_WINDOW's default.
const DefaultEngagementWindow = time.Minute

// Handler routes every endpoint.
func (a *API) Handler() http.Handler {
	a.limits = newLimiter(a.RatePerKey, a.RateBurst)
	a.authFailures = newFailures(a.AuthFailuresPerMinute, a.AuthFailureBurst)
	mux := newRouter()
	a.sources = map[string]string{
		"POST /v1/forms/{id}": sourceForm, "PUT /v1/deals/{id}": sourceCRM, "POST /v1/sources/{source}/events": sourceSigned,
		"GET /v1/t/o/{token}": sourceTracking, "GET /v1/t/c/{token}": sourceTracking, "POST /v1/t/u/{token}": sourceTracking,
		"POST /v1/journeys/{id}/start": sourceAPI,
	}
	// ingestion routes a write-key endpoint and answers its CORS preflight.
	ingestion := func(method, path string, h http.Handler) {
		mux.Handle(method+" "+path, h)
		mux.Handle("OPTIONS "+path, preflight(method))
		if a.sources[method+" "+path] == "" {
			a.sources[method+" "+path] = sourceSegment
		}
	}
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /livez", telemetry.Livez())
	mux.Handle("GET /readyz", telemetry.Readyz(a.readyChecks()...))
	if !a.NoMetrics {
		mux.Handle("GET /metrics", telemetry.Handler())
	}
	mux.HandleFunc("GET /v1/schema/journey.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/schema+json")
		_, _ = w.Write(journey.Schema)
	})
	// Each call also on the one-letter path Segment's browser library posts to: its type's
	// first letter (/v1/t, /v1/i, /v1/p, /v1/s, /v1/g, /v1/a), and /v1/b for a batch.
	for kind := range segmentTypes {
		ingestion("POST", "/v1/"+kind, a.ingest(a.segmentCall(kind), jsonBody, segmentLimits))
		ingestion("POST", "/v1/"+kind[:1], a.ingest(a.segmentCall(kind), jsonBody, segmentLimits))
	}
	batchLimits := within("batch[]", segmentLimits)
	ingestion("POST", "/v1/batch", a.ingest(a.batch, jsonBody, batchLimits))
	ingestion("POST", "/v1/b", a.ingest(a.batch, jsonBody, batchLimits))
	ingestion("POST", "/v1/forms/{id}", keyFromQuery(a.ingest(a.submitForm, formBody, []limit{lim("**", maxFieldValue), lim("messageId", maxMessageID)})))
	ingestion("PUT", "/v1/deals/{id}", a.ingest(a.putDeal, jsonBody, []limit{lim("userId", maxID), lim("title", maxID),
		lim("pipeline", maxID), lim("stage", maxID), lim("owner", maxID)}))
	mux.Handle("POST /v1/sources/{source}/events", a.signed(a.sourceEvent, segmentLimits))
	mux.Handle("PUT /v1/forms/{id}", a.admin(a.putForm, jsonBody, lim("id", maxID), lim("identity", maxID), lim("list", maxID),
		lim("tags[]", maxID), lim("fields.*", maxID)))
	// A journey's tags, lists, events and step ids become index keys when it runs; the
	// journey language owns its vocabulary, so every value is held under the index's limit.
	mux.Handle("PUT /v1/journeys/{id}", a.admin(a.putJourney, docBody, lim("id", maxID), lim("**", maxFieldValue)))
	mux.Handle("GET /v1/journeys/{id}", a.admin(a.getJourney, jsonBody))
	mux.Handle("POST /v1/journeys/{id}/pause", a.admin(a.pauseJourney(true), jsonBody))
	mux.Handle("POST /v1/journeys/{id}/resume", a.admin(a.pauseJourney(false), jsonBody))
	mux.Handle("POST /v1/journeys/{id}/start", a.admin(a.startJourney, jsonBody, lim("userId", maxID), lim("messageId", maxMessageID)))
	mux.Handle("GET /v1/contacts/{id}", a.admin(a.getContact, jsonBody))
	mux.Handle("DELETE /v1/contacts/{id}", a.admin(a.eraseContact, jsonBody, lim("requestedBy", maxID), lim("reason", maxFieldValue)))
	mux.Handle("GET /v1/contacts/{id}/export", a.admin(a.exportContact, jsonBody))
	if a.CodecServer != nil {
		mux.Handle("/codec/", a.codecGuard(a.CodecServer))
	}
	mux.Handle("GET /v1/events", a.admin(a.listEvents, jsonBody))
	mux.Handle("POST /v1/events/{id}/retry", a.admin(a.retryEvent, jsonBody))
	mux.Handle("PUT /v1/scoring-rules/{id}", a.admin(a.putScoringRule, jsonBody, lim("event", maxID), lim("score", maxID)))
	mux.Handle("PUT /v1/fields/{name}", a.admin(a.putField, jsonBody, lim("type", maxID), lim("label", maxID)))
	mux.Handle("GET /v1/fields", a.admin(a.getFields, jsonBody))
	mux.Handle("PUT /v1/segments/{id}", a.admin(a.putSegment, docBody, lim("id", maxID), lim("name", maxID)))
	mux.Handle("GET /v1/segments/{id}", a.admin(a.getSegment, jsonBody))
	mux.Handle("GET /v1/segments/{id}/contacts", a.admin(a.segmentContacts, jsonBody))
	mux.Handle("PUT /v1/campaigns/{id}", a.admin(a.putCampaign, docBody, lim("id", maxID), lim("name", maxID), lim("segment", maxID),
		lim("journey", maxID), lim("message.template", maxID), lim("schedule.*", maxID)))
	mux.Handle("GET /v1/campaigns/{id}", a.admin(a.getCampaign, jsonBody))
	mux.Handle("POST /v1/campaigns/{id}/pause", a.admin(a.pauseCampaign(true), jsonBody))
	mux.Handle("POST /v1/campaigns/{id}/resume", a.admin(a.pauseCampaign(false), jsonBody))
	mux.Handle("POST /v1/campaigns/{id}/fire", a.admin(a.fireCampaign, jsonBody))
	mux.Handle("PUT /v1/objects/{type}", a.admin(a.putObjectType, docBody, lim("id", maxID), lim("name", maxID), lim("sources[].event", maxID), lim("sources[].id", maxID)))
	mux.Handle("GET /v1/objects/{type}", a.admin(a.getObjectType, jsonBody))
	mux.Handle("PUT /v1/objects/{type}/records/{id}", a.admin(a.putRecord, jsonBody, lim("userId", maxID), lim("fields.**", maxFieldValue)))
	mux.Handle("GET /v1/objects/{type}/records/{id}", a.admin(a.getRecord, jsonBody))
	mux.Handle("DELETE /v1/objects/{type}/records/{id}", a.admin(a.deleteRecord, jsonBody))
	mux.Handle("PUT /v1/pipelines/{id}", a.admin(a.putPipeline, jsonBody, lim("name", maxID), lim("stages[].id", maxID), lim("stages[].name", maxID)))
	mux.Handle("GET /v1/pipelines/{id}", a.admin(a.getPipeline, jsonBody))
	mux.Handle("PUT /v1/templates/{id}", a.admin(a.putTemplate, docBody, lim("id", maxID)))
	mux.Handle("GET /v1/templates/{id}", a.admin(a.getTemplate, jsonBody))
	mux.Handle("POST /v1/templates/{id}/preview", a.admin(a.previewTemplate, jsonBody, lim("userId", maxID), lim("event.event", maxID), lim("trigger.event", maxID)))
	mux.Handle("GET /v1/t/o/{token}", a.public(a.trackOpen))
	mux.Handle("GET /v1/t/c/{token}", a.public(a.trackClick))
	mux.Handle("GET /v1/t/u/{token}", a.public(a.unsubscribe))
	mux.Handle("POST /v1/t/u/{token}", a.public(a.unsubscribe))
	a.operations(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
	})
	a.routes = mux.patterns
	return a.observe(mux.ServeMux)
}

// apiError is every error the API returns, as {"error": {...}}.
type apiError struct {
	Status   int               `json:"-"`
	Code     string            `json:"code"`
	Message  string            `json:"message"`
	Path     string            `json:"path,omitempty"`
	Problems []journey.Problem `json:"problems,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(path, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Path: path, Message: fmt.Sprintf(format, args...)}
}

// writeError maps any error to a status and a JSON body, in this one place.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	var ve *journey.ValidationError
	var mbe *http.MaxBytesError
	var re *crm.RecordError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &ve):
		ae = &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_journey", Message: ve.Error(), Problems: ve.Problems}
	case errors.As(err, &mbe):
		ae = &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The server's read timeout passed while the body was still arriving.
		ae = &apiError{Status: http.StatusRequestTimeout, Code: "request_timeout", Message: "the request body did not arrive within the server's read timeout"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		ae = &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Message: "the request body ended before its Content-Length"}
	case errors.Is(err, crm.ErrReservedEvent):
		ae = &apiError{Status: http.StatusUnprocessableEntity, Code: "reserved_event", Message: err.Error()}
	case errors.As(err, &re):
		ae = recordProblem(re)
	case errors.Is(err, crm.ErrNotFound):
		ae = &apiError{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, crm.ErrArchived):
		ae = &apiError{Status: http.StatusConflict, Code: "archived", Message: err.Error()}
	case errors.Is(err, crm.ErrQueryTimeout):
		ae = &apiError{Status: http.StatusServiceUnavailable, Code: "query_timeout",
			Message: "the segment is too expensive to answer in time (" + err.Error() + ", CAIRN_QUERY_TIMEOUT): narrow its condition, or raise the limit"}
	case errors.Is(err, crm.ErrCondition):
		ae = &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_condition", Message: err.Error()}
	default:
		ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; see the starter's log"}
	}
	noteError(w, ae.Code, nil)
	writeJSON(w, ae.Status, map[string]any{"error": ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (a *API) serve(w http.ResponseWriter, r *http.Request, h handlerFunc) {
	if err := h(w, r); err != nil {
		a.fail(w, r, err)
	}
}

// fail answers a request with err. Unless it is the client's doing, the cause goes into the
// request's log line (at ERROR), where the request id finds it.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	writeError(w, err)
	if !errors.As(err, &ae) && !errors.Is(err, crm.ErrNotFound) && !errors.Is(err, crm.ErrArchived) && !errors.As(err, &mbe) &&
		!errors.Is(err, crm.ErrInvalidRecord) && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, io.ErrUnexpectedEOF) {
		if rec, ok := w.(*recorder); ok {
			rec.err = err
			return
		}
		a.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "error", err)
	}
}

// ingest guards an ingestion endpoint. In order: CORS headers (browser pages post events);
// an address that failed authentication too often is turned away; the URL's ids and
// parameters are checked; the write key (the Basic-auth user name, Segment's scheme, or
// else writeKey in the body, as browser libraries send it) is checked and its rate applied;
// the body is read within its limits, decompressed, and walked (checkBody) with the
// endpoint's limits. Only then does the handler run: nothing any of these refuse reaches a
// query.
func (a *API) ingest(h handlerFunc, format bodyFormat, limits []limit) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowOrigin(w, r)
		addr := a.clientAddr(r)
		if wait, blocked := a.authFailures.blocked(addr); blocked {
			tooManyFailures(w, wait)
			return
		}
		if err := checkURL(r); err != nil {
			writeError(w, err)
			return
		}
		key, _, basic := r.BasicAuth()
		if basic && !a.writeKey(w, r, addr, key) {
			return
		}
		_, body, err := readBody(w, r, maxIngestBody)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !basic {
			if key = bodyWriteKey(r, body, format); key == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="cairn"`)
				writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
					Message: "missing write key: send it as the HTTP Basic auth user name (or as writeKey in the body)"})
				return
			}
			if !a.writeKey(w, r, addr, key) {
				return
			}
		}
		if err := checkBody(r, body, format, limits); err != nil {
			writeError(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.serve(w, r, h)
	})
}

// writeKey checks a write key and its rate, and answers the request when either refuses it.
func (a *API) writeKey(w http.ResponseWriter, r *http.Request, addr, key string) bool {
	if !anyKey(a.WriteKeys, key) {
		a.refuseAuth(w, addr, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "unknown write key"})
		return false
	}
	if ok, wait := a.limits.allow(key); !ok {
		tooMany(w, wait)
		return false
	}
	return true
}

// keyFromQuery lets a plain HTML form (which cannot set headers) give its write key as
// ?writeKey=..., as browser snippets do.
func keyFromQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			if k := r.URL.Query().Get("writeKey"); k != "" {
				r.SetBasicAuth(k, "")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// admin guards a management endpoint with the admin API key (write keys are refused), then
// checks the URL and the body (JSON or YAML) as ingest does, with the endpoint's limits.
func (a *API) admin(h handlerFunc, format bodyFormat, limits ...limit) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := a.clientAddr(r)
		if wait, blocked := a.authFailures.blocked(addr); blocked {
			tooManyFailures(w, wait)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "missing admin API key: send Authorization: Bearer <key>"})
			return
		}
		if a.AdminKey == "" || !anyKey([]string{a.AdminKey}, token) {
			a.refuseAuth(w, addr, &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "the key is not the admin API key (write keys cannot manage journeys)"})
			return
		}
		if err := checkURL(r); err != nil {
			writeError(w, err)
			return
		}
		_, body, err := readBody(w, r, maxJourneyBody)
		if err == nil {
			err = checkBody(r, body, format, limits)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.serve(w, r, h)
	})
}

// codecGuard puts the codec server behind the failed-authentication limit: an address
// refused too often is turned away before its token is looked at.
func (a *API) codecGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := a.clientAddr(r)
		if r.Method != http.MethodOptions {
			if wait, blocked := a.authFailures.blocked(addr); blocked {
				tooManyFailures(w, wait)
				return
			}
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusUnauthorized {
			a.authFailures.failed(addr)
		}
	})
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// public serves an endpoint that recipients' mail clients reach: no key, a signed token.
func (a *API) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkURL(r); err != nil {
			writeError(w, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		a.serve(w, r, h)
	})
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func anyKey(keys []string, got string) bool {
	ok := false
	for _, k := range keys {
		if k != "" && subtle.ConstantTimeCompare([]byte(k), []byte(got)) == 1 {
			ok = true
		}
	}
	return ok
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if err := a.DB.Ping(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "database": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

func (a *API) putJourney(w http.ResponseWriter, r *http.Request) error {
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	j, err := journey.Decode(doc)
	if err != nil {
		return err
	}
	if id := r.PathValue("id"); j.ID != id {
		return badRequest("id", "the document's id %q does not match the URL's %q", j.ID, id)
	}
	probs, err := crm.CheckFields(r.Context(), a.DB, j.FieldRefs())
	if err != nil {
		return err
	}
	missing, err := missingTemplates(r.Context(), a.DB, j)
	if err != nil {
		return err
	}
	objs, err := crm.CheckObjectTypes(r.Context(), a.DB, j.ObjectRefs())
	if err != nil {
		return err
	}
	if probs = append(append(probs, missing...), objs...); len(probs) > 0 {
		return &journey.ValidationError{Problems: journey.WithLines(doc, probs)}
	}
	v, created, err := crm.ApplyJourney(r.Context(), a.DB, j, string(doc))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"id": v.JourneyID, "version": v.Version, "created": created, "paused": v.Paused, "definition": v.Definition})
	return nil
}

func (a *API) getJourney(w http.ResponseWriter, r *http.Request) error {
	v, err := crm.JourneyByID(r.Context(), a.DB, r.PathValue("id"), 0)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) getContact(w http.ResponseWriter, r *http.Request) error {
	p, err := a.profile(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	body := map[string]any{"contact": p.Contact, "segments": p.Segments, "scores": p.Scores, "runs": p.Runs}
	if len(p.Unanswered) > 0 {
		// A segment that cannot be answered (too slow, or stored before it would be refused)
		// does not break the profile: it is named here instead.
		body["segments_unanswered"] = p.Unanswered
	}
	if p.RunsNote != "" {
		body["runs_note"] = p.RunsNote
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (a *API) pauseJourney(paused bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := crm.SetPaused(r.Context(), a.DB, r.PathValue("id"), paused); err != nil {
			return err
		}
		return a.getJourney(w, r)
	}
}

// startJourney starts a journey for a contact by API ("manual" start): the request is an
// event like any other, so the dispatcher applies re-entry and entry rules to it.
func (a *API) startJourney(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		UserID    string `json:"userId"`
		MessageID string `json:"messageId"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return badRequest("", "body must be JSON like {\"userId\": \"ada\"}: %s", err)
	}
	if body.UserID == "" {
		return badRequest("userId", "userId is required")
	}
	id := r.PathValue("id")
	if v, err := crm.JourneyByID(r.Context(), a.DB, id, 0); err != nil {
		return err
	} else if v.ArchivedAt != nil {
		return fmt.Errorf("journey %q: %w: it starts no runs", id, crm.ErrArchived)
	}
	key := ""
	if body.MessageID != "" {
		key = "start:" + body.MessageID
	}
	_, inserted, err := crm.RecordEvent(r.Context(), a.DB, crm.EventInput{
		ExternalID: body.UserID, Name: journey.EventStartRequested, Properties: map[string]any{"journey": id},
		Source: "api", DedupeKey: key, OccurredAt: a.Now(),
	})
	if err != nil {
		return err
	}
	a.accepted(r, b2i(inserted), b2i(!inserted))
	writeJSON(w, http.StatusAccepted, map[string]any{"journey": id, "userId": body.UserID, "accepted": true})
	return nil
}

func (a *API) putField(w http.ResponseWriter, r *http.Request) error {
	var f crm.FieldDefinition
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return badRequest("", "a field is JSON with type (text, number, date, boolean) and label: %s", err)
	}
	f.Name = r.PathValue("name")
	if err := crm.PutField(r.Context(), a.DB, f); err != nil {
		if errors.Is(err, crm.ErrCondition) {
			return badRequest("type", "%s", strings.TrimPrefix(err.Error(), crm.ErrCondition.Error()+": "))
		}
		return err
	}
	writeJSON(w, http.StatusOK, f)
	return nil
}

// getFields serves GET /v1/fields: the defined fields by name.
func (a *API) getFields(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := pageOf(r)
	if err != nil {
		return err
	}
	defs, err := crm.ListFields(r.Context(), a.DB, after, limit)
	if err != nil {
		return err
	}
	writePage(w, "fields", defs, limit, func(f crm.FieldDefinition) string { return f.Name })
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
