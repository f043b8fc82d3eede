package starter

import (
	"encoding/json"
	"net/http"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// putScoringRule saves {event, where, points, score, cap: {points, per}, expires_after}.
func (a *API) putScoringRule(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Score  string         `json:"score"`
		Event  string         `json:"event"`
		Where  map[string]any `json:"where"`
		Points float64        `json:"points"`
		Cap    *struct {
			Points float64 `json:"points"`
			Per    string  `json:"per"`
		} `json:"cap"`
		ExpiresAfter string `json:"expires_after"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return badRequest("", "a scoring rule is JSON with event, where, points, score, cap, expires_after: %s", err)
	}
	if body.Event == "" {
		return badRequest("event", "event is required")
	}
	if body.Points == 0 {
		return badRequest("points", "points must not be zero")
	}
	rule := crm.ScoringRule{ID: r.PathValue("id"), Score: body.Score, Event: body.Event, Where: body.Where, Points: body.Points}
	if body.Cap != nil {
		if body.Cap.Points <= 0 {
			return badRequest("cap.points", "a cap must be above zero")
		}
		rule.Cap = &body.Cap.Points
		if body.Cap.Per != "" {
			d, err := journey.ParseDuration(body.Cap.Per)
			if err != nil {
				return badRequest("cap.per", "%s", err)
			}
			rule.CapPeriod = d.D
		}
	}
	if body.ExpiresAfter != "" {
		d, err := journey.ParseDuration(body.ExpiresAfter)
		if err != nil {
			return badRequest("expires_after", "%s", err)
		}
		rule.ExpiresAfter = d.D
	}
	created, err := crm.PutScoringRule(r.Context(), a.DB, rule)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"id": rule.ID, "created": created})
	return nil
}
