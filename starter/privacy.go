package starter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
)

// eraseContact serves DELETE /v1/contacts/{id}: the contact's runs are terminated, every row
// about it is deleted, its data key is destroyed (so every payload of it, in any history,
// decodes to "(erased)"), and the erasure is recorded: who asked and when, nothing personal.
func (a *API) eraseContact(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		RequestedBy string `json:"requestedBy"`
		Reason      string `json:"reason"`
	}
	if b, err := io.ReadAll(r.Body); err != nil {
		return err
	} else if len(strings.TrimSpace(string(b))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return badRequest("", `the body, when there is one, is {"requestedBy": "...", "reason": "..."}: %s`, err)
		}
	}
	if body.RequestedBy == "" {
		body.RequestedBy = "admin API key"
	}
	if a.Codec == nil {
		return &apiError{Status: http.StatusConflict, Code: "no_codec",
			Message: "this starter runs without the payload codec: histories could not be made unreadable"}
	}
	c, err := crm.ContactByExternalID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return err
	}
	ids := append([]string{c.ExternalID}, c.Aliases...)
	ended, runErrs := a.endRuns(r.Context(), c.ID, ids)
	e := &crm.Erasure{ContactID: c.ID, RequestedBy: body.RequestedBy, Reason: body.Reason, RunsEnded: ended, ErasedAt: a.Now()}
	err = crm.EraseContact(r.Context(), a.DB, e, func(tx pgx.Tx) error { return a.Codec.Destroy(r.Context(), tx, c.ID, e.ErasedAt) })
	a.Codec.Forget(c.ID)
	if err != nil {
		return err
	}
	a.Logger.Info("contact erased", "contact_id", c.ID, "erasure", e.ID, "runs_ended", ended)
	out := map[string]any{"erasure": e}
	if len(runErrs) > 0 {
		// The data key is gone all the same: a run not ended fails at its next step.
		out["runs_note"] = "some runs could not be ended now (they fail at their next step, their data unreadable): " + strings.Join(runErrs, "; ")
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// endRuns terminates every open run of the contact: those Temporal's visibility finds by its
// ids, those the CRM enrolled, and its cart watch. The reason names the erasure, nothing more.
func (a *API) endRuns(ctx context.Context, contactID int64, ids []string) (int, []string) {
	if a.Temporal == nil {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wfIDs := map[string]bool{contract.CartWatchID(contactID): true}
	var problems []string
	if open, err := crm.OpenRuns(ctx, a.DB, contactID); err == nil {
		for _, e := range open {
			wfIDs[e.WorkflowID] = true
		}
	} else {
		problems = append(problems, "list enrollments: "+err.Error())
	}
	var quoted []string
	for _, id := range ids {
		if q, ok := quoteVisibility(id); ok {
			quoted = append(quoted, q)
		}
	}
	if len(quoted) > 0 {
		query := fmt.Sprintf("%s IN (%s) AND ExecutionStatus = 'Running'", contract.AttrContactIDs.GetName(), strings.Join(quoted, ", "))
		var token []byte
		for {
			resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: token})
			if err != nil {
				problems = append(problems, "list runs: "+err.Error())
				break
			}
			for _, e := range resp.GetExecutions() {
				if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
					wfIDs[e.GetExecution().GetWorkflowId()] = true
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
	}
	ended := 0
	for id := range wfIDs {
		err := a.Temporal.TerminateWorkflow(ctx, id, "", "contact erased")
		var nf *serviceerror.NotFound
		switch {
		case err == nil:
			ended++
		case errors.As(err, &nf):
		default:
			problems = append(problems, id+": "+err.Error())
		}
	}
	return ended, problems
}

// exportContact serves GET /v1/contacts/{id}/export: everything Cairn holds about the
// contact, from every table, and its journeys with the path each took.
func (a *API) exportContact(w http.ResponseWriter, r *http.Request) error {
	c, err := crm.ContactByExternalID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return err
	}
	out, err := crm.ExportContact(r.Context(), a.DB, c.ID)
	if err != nil {
		return err
	}
	rows, err := crm.ContactEnrollments(r.Context(), a.DB, c.ID)
	if err != nil {
		return err
	}
	journeys := []map[string]any{}
	for _, e := range rows {
		j := map[string]any{"journey": e.JourneyID, "version": e.Version, "workflow_id": e.WorkflowID, "run_id": e.RunID,
			"entered_at": e.EnteredAt, "ended_at": e.EndedAt}
		if a.Temporal != nil {
			if st, err := a.runState(r.Context(), e.WorkflowID, e.RunID); err != nil {
				j["state_note"] = "Temporal did not answer: " + err.Error()
			} else {
				j["status"], j["path"], j["goals_met"] = st.Status, st.Path, st.GoalsMet
			}
		}
		journeys = append(journeys, j)
	}
	out["journeys"] = journeys
	out["exported_at"] = a.Now()
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="contact-%d.json"`, c.ID))
	writeJSON(w, http.StatusOK, out)
	return nil
}

// runState is a run's State: its result once it is over, or else its answer to the state query.
func (a *API) runState(ctx context.Context, workflowID, runID string) (contract.State, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var st contract.State
	info, err := describeChain(ctx, a.Temporal, workflowID, runID) // the run may have continued as new
	if err != nil {
		return st, err
	}
	runID = info.GetExecution().GetRunId()
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		err = a.Temporal.GetWorkflow(ctx, workflowID, runID).Get(ctx, &st)
		return st, err
	}
	v, err := a.Temporal.QueryWorkflow(ctx, workflowID, runID, contract.QueryState)
	if err == nil {
		err = v.Get(&st)
	}
	return st, err
}
