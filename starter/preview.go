package starter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
)

// templateProblem answers a template that does not parse or render: 422 invalid_template,
// with the part (under base: "template.html" for a template sent with a preview) and line.
func templateProblem(err error, base string) error {
	var te *email.TemplateError
	if !errors.As(err, &te) {
		return err
	}
	path := te.Part
	if base != "" {
		path = base + "." + te.Part
	}
	return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_template", Path: path, Message: err.Error(),
		Problems: []journey.Problem{{Path: path, Line: te.Line, Message: te.Message}}}
}

// previewEvent is an event given to a preview, as Segment's track names its parts.
type previewEvent struct {
	Name       string         `json:"event"`
	Properties map[string]any `json:"properties"`
	Timestamp  time.Time      `json:"timestamp"`
}

func (e *previewEvent) data() email.Event {
	if e == nil {
		return email.Event{}
	}
	return email.Event{Name: e.Name, Properties: e.Properties, At: e.Timestamp}
}

// previewTemplate renders a template for a contact, as a journey's email would be rendered
// for it now: POST /v1/templates/{id}/preview with {"userId", "event", "trigger", "timezone",
// "template"}. event is the latest event the run heard and, unless trigger is given, its
// trigger too; template, when given, is rendered instead of the stored one (a draft). Nothing
// is sent or written.
func (a *API) previewTemplate(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		UserID   string          `json:"userId"`
		Event    *previewEvent   `json:"event"`
		Trigger  *previewEvent   `json:"trigger"`
		Timezone string          `json:"timezone"`
		Template *email.Template `json:"template"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return badRequest("", "a preview is JSON like {\"userId\": \"ada\", \"event\": {\"event\": \"cart_abandoned\", \"properties\": {}}}: %s", err)
	}
	if body.UserID == "" {
		return badRequest("userId", "userId is required: the contact to render the template for")
	}
	if body.Timezone != "" {
		if _, err := time.LoadLocation(body.Timezone); err != nil {
			return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Path: "timezone",
				Message: fmt.Sprintf("%q is not an IANA time zone (e.g. Europe/Lisbon)", body.Timezone)}
		}
	}
	tpl, base := email.Template{}, ""
	if body.Template != nil {
		tpl, base = *body.Template, "template"
		tpl.ID = r.PathValue("id")
		if err := tpl.Check(); err != nil {
			return templateProblem(err, base)
		}
	} else {
		var err error
		if tpl, err = crm.TemplateByID(r.Context(), a.DB, r.PathValue("id")); errors.Is(err, crm.ErrNoTemplate) {
			return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no template %q", r.PathValue("id"))}
		} else if err != nil {
			return err
		}
	}
	c, err := crm.ContactByExternalID(r.Context(), a.DB, body.UserID)
	if err != nil {
		return err
	}
	trigger := body.Trigger
	if trigger == nil {
		trigger = body.Event
	}
	data, err := crm.TemplateData(r.Context(), a.DB, crm.TemplateInput{ContactID: c.ID, Trigger: trigger.data(), Event: body.Event.data(),
		Timezone: body.Timezone, Now: a.Now()})
	if err != nil {
		return err
	}
	data.Journey, data.Step = "(preview)", "(preview)"
	out, err := tpl.Render(data)
	if err != nil {
		return templateProblem(err, base)
	}
	writeJSON(w, http.StatusOK, map[string]any{"template": tpl.ID, "userId": body.UserID, "subject": out.Subject, "html": out.HTML, "text": out.Text})
	return nil
}
