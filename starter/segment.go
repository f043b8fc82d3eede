package starter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cairnhq/cairn/crm"
)

// message is the part of a Segment HTTP Tracking API call that Cairn reads; other fields
// (library, integrations, ...) are accepted and ignored, as Segment does.
type message struct {
	Type        string          `json:"type"`
	UserID      json.RawMessage `json:"userId"`
	AnonymousID json.RawMessage `json:"anonymousId"`
	Event       *string         `json:"event"`
	Properties  map[string]any  `json:"properties"`
	Traits      map[string]any  `json:"traits"`
	Context     struct {
		Traits map[string]any `json:"traits"`
	} `json:"context"`
	MessageID string `json:"messageId"`
	Timestamp string `json:"timestamp"`
	SentAt    string `json:"sentAt"`
}

func decodeMessage(r *http.Request) (*message, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("", "request body is empty; send a JSON object")
	}
	var m message
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, badRequest("", "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
		case errors.As(err, &typ):
			return nil, badRequest(typ.Field, "must be %s, not a JSON %s", jsonKind(typ.Type.Kind().String()), typ.Value)
		default:
			return nil, badRequest("", "malformed JSON: %s", err)
		}
	}
	if dec.More() {
		return nil, badRequest("", "malformed JSON: more than one value in the body")
	}
	return &m, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "map", "struct":
		return "an object"
	case "string":
		return "a string"
	case "ptr":
		return "a string"
	}
	return goKind
}

// externalID is the contact key: userId, or "anon:" + anonymousId. Segment allows either to
// be a string or a number.
func (m *message) externalID() (string, error) {
	user, err := idValue(m.UserID, "userId")
	if err != nil {
		return "", err
	}
	if user != "" {
		return user, nil
	}
	anon, err := idValue(m.AnonymousID, "anonymousId")
	if err != nil {
		return "", err
	}
	if anon != "" {
		return "anon:" + anon, nil
	}
	return "", badRequest("userId", "userId or anonymousId is required")
}

func idValue(raw json.RawMessage, field string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	return "", badRequest(field, "must be a string or a number")
}

// occurredAt applies Segment's clock-skew correction: a client's timestamp is shifted by the
// difference between its sentAt and our receive time.
func (m *message) occurredAt(received time.Time) (time.Time, error) {
	if m.Timestamp == "" {
		return received, nil
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		return time.Time{}, badRequest("timestamp", "%q is not an ISO-8601 time", m.Timestamp)
	}
	if m.SentAt != "" {
		sent, err := time.Parse(time.RFC3339Nano, m.SentAt)
		if err != nil {
			return time.Time{}, badRequest("sentAt", "%q is not an ISO-8601 time", m.SentAt)
		}
		ts = ts.Add(received.Sub(sent))
	}
	return ts, nil
}

func (m *message) dedupeKey() string {
	if m.MessageID == "" {
		return ""
	}
	return "segment:" + m.MessageID
}

func (a *API) track(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeMessage(r)
	if err != nil {
		return err
	}
	if m.Event == nil || strings.TrimSpace(*m.Event) == "" {
		return badRequest("event", "event is required on a track call")
	}
	return a.record(w, r, m, strings.TrimSpace(*m.Event), m.Properties, m.Context.Traits)
}

func (a *API) identify(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeMessage(r)
	if err != nil {
		return err
	}
	traits := m.Traits
	if traits == nil {
		traits = m.Context.Traits
	}
	return a.record(w, r, m, "identify", traits, traits)
}

// record stores the message as one event (and its contact) in one transaction; only then
// does the caller get 200. The dispatcher takes it from there.
func (a *API) record(w http.ResponseWriter, r *http.Request, m *message, name string, props, traits map[string]any) error {
	ext, err := m.externalID()
	if err != nil {
		return err
	}
	received := a.Now()
	at, err := m.occurredAt(received)
	if err != nil {
		return err
	}
	if email, ok := traits["email"]; ok {
		if _, isString := email.(string); !isString {
			return badRequest("traits.email", "must be a string")
		}
	}
	_, _, err = a.Store.RecordEvent(r.Context(), crm.EventInput{
		ExternalID: ext, Traits: traits, Name: name, Properties: props,
		Source: "segment", DedupeKey: m.dedupeKey(), OccurredAt: at,
	})
	if err != nil {
		return fmt.Errorf("record %s: %w", name, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
	return nil
}
