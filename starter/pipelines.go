package starter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// putPipeline names a pipeline and orders its stages: {name, stages: [{id, name}]}. Every
// problem is reported with its path, and nothing is stored unless there are none.
func (a *API) putPipeline(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name   string `json:"name"`
		Stages []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"stages"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return badRequest("", "a pipeline is JSON like {\"name\": \"Sales\", \"stages\": [{\"id\": \"lead\", \"name\": \"Lead\"}]}: %s", err)
	}
	p := crm.Pipeline{ID: r.PathValue("id"), Name: strings.TrimSpace(body.Name)}
	var probs []journey.Problem
	if strings.TrimSpace(p.ID) == "" {
		probs = append(probs, journey.Problem{Path: "id", Message: "the URL names no pipeline"})
	}
	seen := map[string]int{}
	for i, st := range body.Stages {
		path := fmt.Sprintf("stages[%d].id", i)
		id := strings.TrimSpace(st.ID)
		switch prev, dup := seen[id]; {
		case id == "":
			probs = append(probs, journey.Problem{Path: path, Message: "a stage needs an id"})
		case dup:
			probs = append(probs, journey.Problem{Path: path, Message: fmt.Sprintf("stage %q is already listed at stages[%d]", id, prev)})
		default:
			seen[id] = i
		}
		p.Stages = append(p.Stages, crm.Stage{ID: id, Name: strings.TrimSpace(st.Name)})
	}
	if len(probs) > 0 {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Path: probs[0].Path,
			Message: probs[0].Path + ": " + probs[0].Message, Problems: probs}
	}
	saved, err := crm.PutPipeline(r.Context(), a.DB, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, saved)
	return nil
}

func (a *API) getPipeline(w http.ResponseWriter, r *http.Request) error {
	p, err := crm.PipelineByID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
