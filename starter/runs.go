package starter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
)

// ContactRun is one of a contact's journey runs, as GET /v1/contacts/{id} lists it.
type ContactRun struct {
	Journey     string     `json:"journey"`
	Version     int        `json:"version"`
	Status      string     `json:"status"`
	CurrentStep string     `json:"current_step,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	ClosedAt    *time.Time `json:"closed_at,omitempty"`
	WorkflowID  string     `json:"workflow_id"`
	RunID       string     `json:"run_id"`
	// TemporalUI links to the run in Temporal's Web UI (when CAIRN_TEMPORAL_UI_URL is set).
	TemporalUI string `json:"temporal_ui,omitempty"`
}

// profile is what GET /v1/contacts/{id} and the contact page show of a contact.
type profile struct {
	Contact    *crm.Contact
	Segments   []string
	Unanswered map[string]string // segments whose check failed, with the error
	Scores     []crm.Score
	Runs       []ContactRun
	RunsNote   string // why Temporal's list of runs is missing, when it is
}

// profile reads the contact known by any of its ids, with its segments, scores and runs.
func (a *API) profile(ctx context.Context, id string) (profile, error) {
	var p profile
	var err error
	if p.Contact, err = crm.ContactByExternalID(ctx, a.DB, id); err != nil {
		return p, err
	}
	if p.Segments, p.Unanswered, err = crm.ContactSegments(ctx, a.DB, p.Contact.ID, a.Now()); err != nil {
		return p, err
	}
	if p.Scores, err = crm.Scores(ctx, a.DB, p.Contact.ID); err != nil {
		return p, err
	}
	p.Runs, p.RunsNote, err = a.contactRuns(ctx, p.Contact)
	return p, err
}

// maxRunsListed bounds the runs a contact profile lists.
const maxRunsListed = 100

// contactRuns lists the contact's runs: every run Temporal's visibility finds by the
// contact's ids (CairnContactIDs), and the CRM's record of runs it does not list (started
// before that search attribute, or not yet visible). Temporal being unreachable leaves the
// CRM's record, with the reason.
func (a *API) contactRuns(ctx context.Context, c *crm.Contact) ([]ContactRun, string, error) {
	rows, err := crm.ContactEnrollments(ctx, a.DB, c.ID)
	if err != nil {
		return nil, "", err
	}
	runs := []ContactRun{}
	seen := map[string]bool{}
	note := ""
	if a.Temporal != nil {
		found, err := a.visibleRuns(ctx, c.ExternalID)
		if err != nil {
			note = "Temporal did not answer; runs are listed as the CRM recorded them: " + err.Error()
		}
		for _, r := range found {
			seen[r.RunID] = true
			runs = append(runs, r)
		}
	}
	for _, e := range rows {
		if seen[e.RunID] {
			continue
		}
		r := ContactRun{Journey: e.JourneyID, Version: e.Version, Status: "running", StartedAt: e.EnteredAt, ClosedAt: e.EndedAt,
			WorkflowID: e.WorkflowID, RunID: e.RunID, TemporalUI: a.runLink(e.WorkflowID, e.RunID)}
		if e.EndedAt != nil {
			r.Status = "ended"
		}
		runs = append(runs, r)
	}
	return runs, note, nil
}

// visibleRuns asks Temporal's visibility for the contact's runs, newest first.
func (a *API) visibleRuns(ctx context.Context, externalID string) ([]ContactRun, error) {
	quoted, ok := quoteVisibility(externalID)
	if !ok {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize: maxRunsListed,
		Query:    fmt.Sprintf("%s = %s AND WorkflowType = '%s'", contract.AttrContactIDs.GetName(), quoted, contract.WorkflowType),
	})
	if err != nil {
		return nil, err
	}
	dc := converter.GetDefaultDataConverter()
	out := make([]ContactRun, 0, len(resp.GetExecutions()))
	for _, e := range resp.GetExecutions() {
		r := ContactRun{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
			StartedAt: e.GetStartTime().AsTime(), Status: runStatus(e.GetStatus())}
		if e.GetCloseTime() != nil {
			t := e.GetCloseTime().AsTime()
			r.ClosedAt = &t
		}
		fields := e.GetSearchAttributes().GetIndexedFields()
		if p := fields[contract.AttrJourney.GetName()]; p != nil {
			_ = dc.FromPayload(p, &r.Journey)
		}
		if p := fields[contract.AttrStep.GetName()]; p != nil {
			_ = dc.FromPayload(p, &r.CurrentStep)
		}
		if p := fields[contract.AttrJourneyVersion.GetName()]; p != nil {
			var v int64
			_ = dc.FromPayload(p, &v)
			r.Version = int(v)
		}
		r.TemporalUI = a.runLink(r.WorkflowID, r.RunID)
		out = append(out, r)
	}
	return out, nil
}

// quoteVisibility quotes a value for a visibility query, or says it cannot be (it holds
// both kinds of quote).
func quoteVisibility(v string) (string, bool) {
	switch {
	case !strings.Contains(v, "'"):
		return "'" + v + "'", true
	case !strings.Contains(v, `"`):
		return `"` + v + `"`, true
	}
	return "", false
}

func runStatus(s enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WORKFLOW_EXECUTION_STATUS_"))
}

// runLink is the run's page in Temporal's Web UI, or "" when its URL is not configured.
func (a *API) runLink(workflowID, runID string) string {
	if a.TemporalUI == "" {
		return ""
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", strings.TrimSuffix(a.TemporalUI, "/"),
		url.PathEscape(a.Namespace), url.PathEscape(workflowID), url.PathEscape(runID))
}

// listEvents serves GET /v1/events?status=failed: dead-lettered events, newest first, with
// their last error; ?before=<id> pages.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if s := q.Get("status"); s != "failed" {
		return badRequest("status", "status must be failed (the events whose dispatch gave up), not %q", s)
	}
	before, err := queryInt(q, "before", 0)
	if err != nil {
		return err
	}
	limit, err := queryInt(q, "limit", 100)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 1000 {
		return badRequest("limit", "limit must be between 1 and 1000")
	}
	events, err := crm.FailedEvents(r.Context(), a.DB, before, int(limit))
	if err != nil {
		return err
	}
	next := ""
	if len(events) == int(limit) {
		next = fmt.Sprintf("/v1/events?status=failed&limit=%d&before=%d", limit, events[len(events)-1].ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "next": next})
	return nil
}

// retryEvent serves POST /v1/events/{id}/retry: a dead-lettered event goes back in the queue.
func (a *API) retryEvent(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return badRequest("id", "event id must be a positive whole number")
	}
	switch err := crm.RetryEvent(r.Context(), a.DB, id); {
	case errors.Is(err, crm.ErrNotFailed):
		return &apiError{Status: http.StatusConflict, Code: "not_failed", Message: err.Error()}
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": "queued"})
	return nil
}

func queryInt(q url.Values, name string, def int64) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest(name, "%s must be a whole number ≥ 0", name)
	}
	return n, nil
}
