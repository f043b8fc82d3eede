package starter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/object"
)

// recordProblem answers a record its type's schema refuses: 422 invalid_record with the paths.
func recordProblem(re *crm.RecordError) *apiError {
	ae := &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_record", Message: re.Error(), Problems: re.Problems}
	if len(re.Problems) > 0 {
		ae.Path = re.Problems[0].Path
	}
	return ae
}

// putObjectType defines (or redefines) a custom object type: {name, schema, sources}.
func (a *API) putObjectType(w http.ResponseWriter, r *http.Request) error {
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	id := r.PathValue("type")
	if p := object.IDProblem(id); p != "" {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_object", Path: "url path type", Message: p}
	}
	t, err := object.Decode(id, doc)
	if err == nil {
		var created bool
		if created, err = crm.PutObjectType(r.Context(), a.DB, t, string(doc)); err == nil {
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			return a.writeObjectType(w, r, status, id)
		}
	}
	var ve *journey.ValidationError
	if errors.As(err, &ve) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_object", Message: ve.Error(), Problems: ve.Problems}
	}
	return err
}

func (a *API) writeObjectType(w http.ResponseWriter, r *http.Request, status int, id string) error {
	t, err := crm.ObjectTypeByID(r.Context(), a.DB, id)
	if err != nil {
		return err
	}
	if t.Sources == nil {
		t.Sources = []object.Source{}
	}
	writeJSON(w, status, t)
	return nil
}

func (a *API) getObjectType(w http.ResponseWriter, r *http.Request) error {
	return a.writeObjectType(w, r, http.StatusOK, r.PathValue("type"))
}

// putRecord writes a record: {"userId", "fields"}; the fields replace the record's.
func (a *API) putRecord(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		UserID string         `json:"userId"`
		Fields map[string]any `json:"fields"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return badRequest("", "a record is JSON like {\"userId\": \"ada\", \"fields\": {…}}: %s", err)
	}
	if body.UserID == "" {
		return badRequest("userId", "userId is required: the contact the record belongs to")
	}
	if body.Fields == nil {
		return badRequest("fields", "fields is required")
	}
	typ, id := r.PathValue("type"), r.PathValue("id")
	if p := object.RecordIDProblem(id); p != "" {
		return badRequest("url path id", "%s", p)
	}
	created, changed, err := crm.PutRecord(r.Context(), a.DB, typ, id, body.UserID, body.Fields, a.Now())
	if err != nil {
		return err
	}
	rec, err := crm.RecordByID(r.Context(), a.DB, typ, id)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"record": rec, "changed": changed})
	return nil
}

func (a *API) getRecord(w http.ResponseWriter, r *http.Request) error {
	rec, err := crm.RecordByID(r.Context(), a.DB, r.PathValue("type"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"record": rec})
	return nil
}

func (a *API) deleteRecord(w http.ResponseWriter, r *http.Request) error {
	if err := crm.DeleteRecord(r.Context(), a.DB, r.PathValue("type"), r.PathValue("id"), a.Now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": fmt.Sprintf("%s/%s", r.PathValue("type"), r.PathValue("id"))})
	return nil
}
