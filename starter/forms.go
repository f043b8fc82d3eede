package starter

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/cairnhq/cairn/crm"
)

func (a *API) putForm(w http.ResponseWriter, r *http.Request) error {
	var f crm.Form
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return badRequest("", "form must be JSON with fields, identity, list, tags: %s", err)
	}
	id := r.PathValue("id")
	if f.ID == "" {
		f.ID = id
	}
	if f.ID != id {
		return badRequest("id", "the document's id %q does not match the URL's %q", f.ID, id)
	}
	if f.Identity == "" {
		f.Identity = "email"
	}
	created, err := crm.PutForm(r.Context(), a.DB, f)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, f)
	return nil
}

// submitForm accepts a form post (urlencoded, as a plain HTML form sends it, or JSON), maps
// its fields and records it; the dispatcher starts form_submitted journeys.
func (a *API) submitForm(w http.ResponseWriter, r *http.Request) error {
	f, err := crm.FormByID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return err
	}
	raw, err := readFormFields(r)
	if err != nil {
		return err
	}
	fields := map[string]any{}
	for k, v := range raw {
		if k == "messageId" || k == "writeKey" {
			continue
		}
		if to, ok := f.Fields[k]; ok {
			k = to
		}
		fields[k] = v
	}
	ident, _ := fields[f.Identity].(string)
	if strings.TrimSpace(ident) == "" {
		return badRequest(f.Identity, "the form's identifying field %q is required", f.Identity)
	}
	if len(ident) > maxID {
		return tooLong(f.Identity, len(ident), maxID)
	}
	if f.Identity == "email" && !strings.Contains(ident, "@") {
		return badRequest("email", "%q is not an email address", ident)
	}
	key := ""
	if id, _ := raw["messageId"].(string); id != "" {
		key = "form:" + f.ID + ":" + id
	}
	inserted, err := crm.SubmitForm(r.Context(), a.DB, f, strings.TrimSpace(strings.ToLower(ident)), fields, key, a.Now())
	if err != nil {
		return fmt.Errorf("record form: %w", err)
	}
	a.accepted(r, b2i(inserted), b2i(!inserted))
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
	return nil
}

func readFormFields(r *http.Request) (map[string]any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case formIsJSON(r):
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, badRequest("", "malformed JSON: %s", err)
		}
		return m, nil
	case mt == "application/x-www-form-urlencoded" || mt == "":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, badRequest("", "malformed form body: %s", err)
		}
		m := map[string]any{}
		for k, vals := range v {
			m[k] = strings.Join(vals, ", ")
		}
		return m, nil
	}
	return nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: fmt.Sprintf("Content-Type %q: send application/x-www-form-urlencoded, application/json or JSON as text/plain", mt)}
}
