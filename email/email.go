// Package email renders journey emails, adds open and click tracking and unsubscribe links
// signed with a key, and sends them over SMTP.
package email

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// Template is an email template as stored: subject, HTML and text parts. Parts use Go
// template syntax over Data: {{.Contact.Email}}, {{field "first_name" "there"}}, {{.Score}}.
type Template struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	HTML    string `json:"html"`
	Text    string `json:"text"`
}

// Data is what a template is rendered with.
type Data struct {
	Contact Contact
	Fields  map[string]any
	Score   float64
	Journey string
	Step    string
	// Context adds the run's events, tags, scores, cart, last order, objects and
	// recommendations (context.go): .Cart, .Trigger, recommend 3, …
	Context
}

// Contact is the part of a contact a template sees.
type Contact struct {
	ID         int64
	ExternalID string
	Email      string
}

// Rendered is a template rendered for one contact.
type Rendered struct {
	Subject, HTML, Text string
}

// ErrTemplate marks a template that does not parse or refers to what Data lacks.
var ErrTemplate = errors.New("invalid template")

func funcs(d *Data) map[string]any {
	m := contextFuncs(d)
	for k, v := range map[string]any{
		// field returns a contact field, or the fallback when it is unset.
		// Segment's own traits are camelCase (firstName), so first_name finds them too.
		"field": func(name string, fallback ...string) any {
			if d != nil {
				for _, n := range []string{name, camel(name)} {
					if v, ok := d.Fields[n]; ok && v != nil && fmt.Sprint(v) != "" {
						return v
					}
				}
			}
			return strings.Join(fallback, "")
		},
	} {
		m[k] = v
	}
	return m
}

// Check parses the template and renders it for an empty contact, so a reference to
// something Data does not have ({{.Contact.Phone}}) is found when the template is saved, not
// when the first contact reaches the step.
func (t Template) Check() error {
	if strings.TrimSpace(t.Subject) == "" {
		return &TemplateError{Part: "subject", Message: "subject is required"}
	}
	if t.HTML == "" && t.Text == "" {
		return &TemplateError{Part: "html", Message: "an html or a text part is required"}
	}
	_, err := t.Render(Data{Fields: map[string]any{}})
	return err
}

// Render fills in the three parts.
func (t Template) Render(d Data) (Rendered, error) {
	var r Rendered
	var err error
	if r.Subject, err = renderText("subject", t.Subject, &d); err != nil {
		return r, err
	}
	if r.Text, err = renderText("text", t.Text, &d); err != nil {
		return r, err
	}
	if t.HTML != "" {
		tpl, err := htmltemplate.New("html").Funcs(funcs(&d)).Option("missingkey=zero").Parse(t.HTML)
		if err != nil {
			return r, templateError("html", err)
		}
		var b bytes.Buffer
		if err := tpl.Execute(&b, d); err != nil {
			return r, templateError("html", err)
		}
		r.HTML = b.String()
	}
	r.Subject = strings.TrimSpace(strings.ReplaceAll(r.Subject, "\n", " "))
	return r, nil
}

func renderText(name, src string, d *Data) (string, error) {
	tpl, err := texttemplate.New(name).Funcs(funcs(d)).Option("missingkey=zero").Parse(src)
	if err != nil {
		return "", templateError(name, err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, d); err != nil {
		return "", templateError(name, err)
	}
	return b.String(), nil
}

// Message is one email ready to send.
type Message struct {
	// ID is the RFC 5322 Message-ID, derived from the idempotency key: a resend after a crash
	// carries the same one, so receiving systems can tell it is the same message.
	ID          string
	From        string
	ReplyTo     string
	To          string
	Subject     string
	HTML        string
	Text        string
	Unsubscribe string // one-click unsubscribe URL (RFC 8058), "" for none
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// RenderText renders a one-part text template (an SMS, a team notification) with Data.
func RenderText(src string, d Data) (string, error) {
	return renderText("text", src, &d)
}

// camel turns first_name into firstName.
func camel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}
