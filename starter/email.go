package starter

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
)

// pixel is a transparent 1×1 GIF.
var pixel = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// claims verifies a tracking token; a bad one is a 400, never a redirect. An expired one is
// genuine but counts nothing: live says whether the request may be recorded.
func (a *API) claims(r *http.Request, kind string) (c email.Claims, live bool, err error) {
	c, err = email.Signer{Key: a.TrackingKey}.Verify(r.PathValue("token"), kind, a.Now())
	switch {
	case errors.Is(err, email.ErrTokenExpired):
		return c, false, nil
	case err != nil:
		return c, false, &apiError{Status: http.StatusBadRequest, Code: "invalid_token", Message: "the link is invalid or has been tampered with"}
	}
	return c, true, nil
}

// engagementWindow is how long a repeated open or click of one message counts once.
func (a *API) engagementWindow() time.Duration {
	switch {
	case a.EngagementWindow < 0:
		return 0
	case a.EngagementWindow == 0:
		return DefaultEngagementWindow
	}
	return a.EngagementWindow
}

func (a *API) trackOpen(w http.ResponseWriter, r *http.Request) error {
	c, live, err := a.claims(r, email.KindOpen)
	if err != nil {
		return err
	}
	if live {
		if err := crm.RecordEngagement(r.Context(), a.DB, c, a.Now(), a.engagementWindow()); err != nil {
			return err
		}
		a.accepted(r, 1, 0)
	}
	w.Header().Set("Content-Type", "image/gif")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(pixel)
	return nil
}

// trackClick redirects to the link even when the token has expired, so that an old email
// still takes its reader where it promised; only live tokens record the click.
func (a *API) trackClick(w http.ResponseWriter, r *http.Request) error {
	c, live, err := a.claims(r, email.KindClick)
	if err != nil {
		return err
	}
	if live {
		if err := crm.RecordEngagement(r.Context(), a.DB, c, a.Now(), a.engagementWindow()); err != nil {
			return err
		}
		a.accepted(r, 1, 0)
	}
	// Only to the URL the token was minted for: the signature covers it.
	http.Redirect(w, r, c.URL, http.StatusFound)
	return nil
}

var unsubscribePage = template.Must(template.New("u").Parse(`<!doctype html>
<title>Unsubscribe</title><style>body{font-family:sans-serif;margin:3em;max-width:30em}</style>
{{if .Done}}<h1>You are unsubscribed</h1><p>You will not get marketing email from us any more.</p>
{{else}}<h1>Unsubscribe?</h1><form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe me</button></form>{{end}}`))

// unsubscribe: GET asks for confirmation (so link scanners unsubscribe no one); POST, from the
// page or from a mail client's one-click (RFC 8058), unsubscribes.
func (a *API) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	c, live, err := a.claims(r, email.KindUnsubscribe)
	if err != nil {
		return err
	}
	if !live {
		return &apiError{Status: http.StatusGone, Code: "token_expired", Message: "this unsubscribe link has expired; use the one in a newer email"}
	}
	done := r.Method == http.MethodPost
	if done {
		if err := crm.Unsubscribe(r.Context(), a.DB, c, a.Now()); err != nil {
			return err
		}
		a.accepted(r, 1, 0)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return unsubscribePage.Execute(w, map[string]bool{"Done": done})
}

func (a *API) putTemplate(w http.ResponseWriter, r *http.Request) error {
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var t email.Template
	dec := yaml.NewDecoder(bytesReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return badRequest("", "template must be YAML or JSON with subject, html and text: %s", err)
	}
	if t.ID == "" {
		t.ID = r.PathValue("id")
	}
	if t.ID != r.PathValue("id") {
		return badRequest("id", "the document's id %q does not match the URL's %q", t.ID, r.PathValue("id"))
	}
	if err := t.Check(); err != nil {
		return templateProblem(err, "")
	}
	created, err := crm.PutTemplate(r.Context(), a.DB, t)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, t)
	return nil
}

func (a *API) getTemplate(w http.ResponseWriter, r *http.Request) error {
	t, err := crm.TemplateByID(r.Context(), a.DB, r.PathValue("id"))
	if errors.Is(err, crm.ErrNoTemplate) {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no template %q", r.PathValue("id"))}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}
