package starter

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cairnhq/cairn/crm"
)

// putDeal takes a deal from another CRM (write key): {userId, title, pipeline, stage, value,
// owner}. A new stage records deal_stage_changed, which deal_stage triggers start journeys on.
func (a *API) putDeal(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		UserID   string   `json:"userId"`
		Title    string   `json:"title"`
		Pipeline string   `json:"pipeline"`
		Stage    string   `json:"stage"`
		Value    *float64 `json:"value"`
		Owner    string   `json:"owner"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return badRequest("", "deal must be JSON with userId, title, pipeline, stage, value, owner: %s", err)
	}
	for _, f := range []struct{ name, v string }{{"userId", body.UserID}, {"pipeline", body.Pipeline}, {"stage", body.Stage}} {
		if strings.TrimSpace(f.v) == "" {
			return badRequest(f.name, "%s is required", f.name)
		}
	}
	changed, err := crm.SyncDeal(r.Context(), a.DB, crm.DealUpdate{ExternalID: r.PathValue("id"), Contact: body.UserID,
		Title: body.Title, Pipeline: body.Pipeline, Stage: body.Stage, Value: body.Value, Owner: body.Owner, At: a.Now()})
	if err != nil {
		return err
	}
	a.accepted(r, b2i(changed), 0) // a deal records an event only when its stage changes
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "stage_changed": changed})
	return nil
}
