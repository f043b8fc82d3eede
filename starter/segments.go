package starter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/telemetry"
)

type queryTimeoutKey struct{}

// WithQueryTimeout bounds each statement of the segment counts and member pages h answers by
// d (crm.DefaultQueryTimeout when zero); past it the reply is 503 query_timeout. Run wraps
// the API's handler with CAIRN_QUERY_TIMEOUT.
func WithQueryTimeout(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), queryTimeoutKey{}, d)))
	})
}

func queryTimeout(ctx context.Context) time.Duration {
	d, _ := ctx.Value(queryTimeoutKey{}).(time.Duration)
	return d
}

// putSegment saves {id?, name, condition} (YAML or JSON); the condition is checked with
// paths, and compiled, before anything is stored.
func (a *API) putSegment(w http.ResponseWriter, r *http.Request) error {
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	m, err := journey.Parse(doc)
	var ve *journey.ValidationError
	if errors.As(err, &ve) && len(doc) > journey.MaxDocumentBytes {
		return err
	}
	if err != nil || m.Kind != yaml.MappingNode {
		return badRequest("", "a segment is a mapping with name and condition")
	}
	seg := crm.Segment{ID: r.PathValue("id")}
	var cond *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch k, v := m.Content[i].Value, m.Content[i+1]; k {
		case "id":
			if v.Value != seg.ID {
				return badRequest("id", "the document's id %q does not match the URL's %q", v.Value, seg.ID)
			}
		case "name":
			seg.Name = v.Value
		case "condition":
			cond = v
		default:
			return badRequest(k, "unknown key (allowed: id, name, condition)")
		}
	}
	if cond == nil {
		return badRequest("condition", "condition is required")
	}
	c, err := journey.DecodeSegmentCondition(cond, "condition")
	if err != nil {
		return err
	}
	probs, err := crm.CheckFields(r.Context(), a.DB, c.FieldRefs("condition"))
	if err != nil {
		return err
	}
	objs, err := crm.CheckObjectTypes(r.Context(), a.DB, c.ObjectRefs("condition"))
	if err != nil {
		return err
	}
	if probs = append(probs, objs...); len(probs) > 0 {
		return &journey.ValidationError{Problems: probs}
	}
	seg.Condition = *c
	created, err := crm.PutSegment(r.Context(), a.DB, seg)
	if errors.Is(err, crm.ErrCondition) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_condition", Path: "condition", Message: err.Error()}
	}
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, seg)
	return nil
}

func (a *API) getSegment(w http.ResponseWriter, r *http.Request) error {
	seg, err := crm.SegmentByID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := crm.CountMatching(r.Context(), a.DB, seg.Condition, crm.Env{Now: a.Now(), Timeout: queryTimeout(r.Context())})
	telemetry.Since(telemetry.SegmentQueryDuration.WithLabelValues("count"), start)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": seg.ID, "name": seg.Name, "condition": seg.Condition, "count": n})
	return nil
}

// segmentContacts lists members in contact id order: ?limit= (1–1000, default 100) and
// ?after=<id from the previous page's next>.
func (a *API) segmentContacts(w http.ResponseWriter, r *http.Request) error {
	seg, err := crm.SegmentByID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return err
	}
	limit, after := 100, int64(0)
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return badRequest("limit", "limit must be a whole number from 1 to 1000")
		}
	}
	if v := r.URL.Query().Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil {
			return badRequest("after", "after must be the next value of the previous page")
		}
	}
	start := time.Now()
	contacts, err := crm.SegmentContacts(r.Context(), a.DB, seg.Condition, crm.Env{Now: a.Now(), Timeout: queryTimeout(r.Context())}, after, limit)
	telemetry.Since(telemetry.SegmentQueryDuration.WithLabelValues("members"), start)
	if err != nil {
		return err
	}
	out := map[string]any{"contacts": contacts}
	if len(contacts) == limit {
		out["next"] = fmt.Sprint(contacts[len(contacts)-1].ID)
	}
	if contacts == nil {
		out["contacts"] = []crm.Contact{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
