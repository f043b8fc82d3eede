package simulation

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/provider"
)

// Message is a delivery the run would have made, rendered as it would have gone out.
type Message struct {
	At   time.Time `json:"at"`
	Step string    `json:"step"`
	// Channel is email, sms, notify or audience.
	Channel string `json:"channel"`
	To      string `json:"to,omitempty"`
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Audience and Change (add, remove) describe an ad audience change.
	Audience string `json:"audience,omitempty"`
	Change   string `json:"change,omitempty"`
}

// publicURL is where the simulated messages' tracking and unsubscribe links point: nowhere.
const publicURL = "https://simulation.invalid"

// deliveries gives the activities senders and providers that capture what they are given
// instead of sending it; the activities render, check and record as they do for real.
func deliveries(a *activities.Activities, s *sim) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	a.Mail = &activities.Mail{Sender: captureMail{s}, Domain: "simulation.invalid",
		Tracker: email.Tracker{Signer: email.Signer{Key: key}, BaseURL: publicURL}}
	client := provider.Client{HTTP: &http.Client{Transport: captureCalls{s}}, Attempts: 1}
	a.SMS = &provider.SMS{Client: client, BaseURL: "https://sms.simulation.invalid", AccountID: "simulation", Token: "simulation", From: "+10000000000"}
	a.Notifier = &provider.Notify{Client: client, URL: "https://notify.simulation.invalid"}
	a.Audience = &provider.Audience{Client: client, BaseURL: "https://audience.simulation.invalid", Token: "simulation"}
}

func (s *sim) capture(ctx context.Context, m Message) {
	m.At, m.Step = s.env.Now(), stepOf(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.Messages = append(s.res.Messages, m)
}

// captureMail takes emails.
type captureMail struct{ s *sim }

func (c captureMail) Send(ctx context.Context, m email.Message) error {
	c.s.capture(ctx, Message{Channel: "email", To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	return nil
}

// captureCalls answers the SMS, notification and audience providers' requests as they would
// be answered, keeping what each would have delivered.
type captureCalls struct{ s *sim }

func (c captureCalls) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	reply := "{}"
	switch {
	case strings.HasPrefix(req.URL.Host, "sms."):
		form, _ := url.ParseQuery(string(body))
		c.s.capture(req.Context(), Message{Channel: "sms", To: form.Get("To"), Text: form.Get("Body")})
		reply = `{"sid": "SMsimulation"}`
	case strings.HasPrefix(req.URL.Host, "notify."):
		var n struct{ Text, Channel string }
		_ = json.Unmarshal(body, &n)
		c.s.capture(req.Context(), Message{Channel: "notify", To: n.Channel, Text: n.Text})
	case strings.HasPrefix(req.URL.Host, "audience."):
		change := "add"
		if req.Method == http.MethodDelete {
			change = "remove"
		}
		audience := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/"), "/users")
		c.s.capture(req.Context(), Message{Channel: "audience", Audience: audience, Change: change})
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader([]byte(reply))), Request: req}, nil
}

type stepKey struct{}

func stepOf(ctx context.Context) string {
	step, _ := ctx.Value(stepKey{}).(string)
	return step
}

// simActivities are the real activities, with the step each delivery belongs to passed to
// the capture (the names are the ones the workflow calls).
type simActivities struct {
	*activities.Activities
}

// SendEmail sends (captures) an email, knowing its step.
func (a *simActivities) SendEmail(ctx context.Context, in activities.SendEmailInput) (activities.ActionOutput, error) {
	return a.Activities.SendEmail(context.WithValue(ctx, stepKey{}, in.Step), in)
}

// SendSMS sends (captures) a text message, knowing its step.
func (a *simActivities) SendSMS(ctx context.Context, in activities.ActionInput) (activities.ActionOutput, error) {
	return a.Activities.SendSMS(context.WithValue(ctx, stepKey{}, in.Step.ID), in)
}

// Notify notifies (captures) the team, knowing its step.
func (a *simActivities) Notify(ctx context.Context, in activities.ActionInput) (activities.ActionOutput, error) {
	return a.Activities.Notify(context.WithValue(ctx, stepKey{}, in.Step.ID), in)
}

// AddToAudience changes (captures) an ad audience, knowing its step.
func (a *simActivities) AddToAudience(ctx context.Context, in activities.ActionInput) (activities.ActionOutput, error) {
	return a.Activities.AddToAudience(context.WithValue(ctx, stepKey{}, in.Step.ID), in)
}

// RemoveFromAudience changes (captures) an ad audience, knowing its step.
func (a *simActivities) RemoveFromAudience(ctx context.Context, in activities.ActionInput) (activities.ActionOutput, error) {
	return a.Activities.RemoveFromAudience(context.WithValue(ctx, stepKey{}, in.Step.ID), in)
}
