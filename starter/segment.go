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
	"github.com/cairnhq/cairn/journey"
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
		// Read leniently (any JSON is accepted, non-strings ignored): Segment itself
		// never rejects a message for its context.
		Location any `json:"location"`
		Device   any `json:"device"`
		Timezone any `json:"timezone"`
	} `json:"context"`
	MessageID string `json:"messageId"`
	Timestamp string `json:"timestamp"`
	// OriginalTimestamp is RudderStack's name for the client's time of the event; its
	// clients send no timestamp.
	OriginalTimestamp string `json:"originalTimestamp"`
	SentAt            string `json:"sentAt"`
	Name              string `json:"name"`       // page and screen
	GroupID           string `json:"groupId"`    // group
	PreviousID        string `json:"previousId"` // alias
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
	field, value := "timestamp", m.Timestamp
	if value == "" {
		field, value = "originalTimestamp", m.OriginalTimestamp
	}
	if value == "" {
		return received, nil
	}
	ts, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return time.Time{}, badRequest(field, "%q is not an ISO-8601 time", value)
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

// segmentTypes are the Segment calls Cairn accepts, each on its own endpoint and in batches.
var segmentTypes = map[string]bool{"track": true, "identify": true, "page": true, "screen": true, "group": true, "alias": true}

// segmentCall serves /v1/{type}: one message, recorded in one transaction.
func (a *API) segmentCall(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		m, err := decodeMessage(r)
		if err != nil {
			return err
		}
		m.Type = kind
		in, err := m.event(a.Now(), "")
		if err != nil {
			return err
		}
		return a.recordAll(w, r, []crm.EventInput{in})
	}
}

// batch serves /v1/batch: every message is checked first, then all are recorded in one
// transaction, so a bad message in the batch records none of them.
func (a *API) batch(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var b struct {
		Batch   []json.RawMessage `json:"batch"`
		SentAt  string            `json:"sentAt"`
		Context json.RawMessage   `json:"context"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return badRequest("", "malformed JSON: %s", err)
	}
	if len(b.Batch) == 0 {
		return badRequest("batch", "batch must be a non-empty list of messages")
	}
	received := a.Now()
	events := make([]crm.EventInput, 0, len(b.Batch))
	for i, raw := range b.Batch {
		path := fmt.Sprintf("batch[%d]", i)
		var m message
		if err := json.Unmarshal(raw, &m); err != nil {
			return badRequest(path, "malformed message: %s", err)
		}
		if !segmentTypes[m.Type] {
			return badRequest(path+".type", "%q is not a Segment call type (track, identify, page, screen, group, alias)", m.Type)
		}
		in, err := m.event(received, b.SentAt)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				ae.Path = strings.TrimSuffix(path+"."+ae.Path, ".")
			}
			return err
		}
		events = append(events, in)
	}
	return a.recordAll(w, r, events)
}

// event turns a Segment message into the event Cairn records. batchSentAt applies to batch
// messages that carry no sentAt of their own.
func (m *message) event(received time.Time, batchSentAt string) (crm.EventInput, error) {
	var in crm.EventInput
	ext, err := m.externalID()
	if err != nil {
		return in, err
	}
	if m.SentAt == "" {
		m.SentAt = batchSentAt
	}
	at, err := m.occurredAt(received)
	if err != nil {
		return in, err
	}
	traits, props := m.Context.Traits, m.Properties
	switch m.Type {
	case "track":
		if m.Event == nil || strings.TrimSpace(*m.Event) == "" {
			return in, badRequest("event", "event is required on a track call")
		}
		in.Name = strings.TrimSpace(*m.Event)
		if journey.ReservedForTrack(in.Name) {
			return in, &apiError{Status: http.StatusUnprocessableEntity, Code: "reserved_event", Path: "event",
				Message: fmt.Sprintf("%q is a name Cairn records itself (a tag, an open, a journey start…) or another Segment call's; a track may not use it: send your own event name (docs/events.md lists the reserved ones)", in.Name)}
		}
	case "identify":
		if m.Traits != nil {
			traits = m.Traits
		}
		in.Name, props = "identify", traits
	case "page", "screen":
		in.Name = m.Type
		props = withKey(props, "name", m.Name)
	case "group":
		if m.GroupID == "" {
			return in, badRequest("groupId", "groupId is required on a group call")
		}
		in.Name, props = "group", withKey(m.Traits, "groupId", m.GroupID)
	case "alias":
		if m.PreviousID == "" {
			return in, badRequest("previousId", "previousId is required on an alias call")
		}
		in.Name, props, in.AliasOf = "alias", map[string]any{"previousId": m.PreviousID}, m.PreviousID
	}
	if email, ok := traits["email"]; ok {
		if _, isString := email.(string); !isString {
			return in, badRequest("traits.email", "must be a string")
		}
	}
	in.ExternalID, in.Traits, in.Properties = ext, traits, props
	in.Source, in.DedupeKey, in.OccurredAt = "segment", m.dedupeKey(), at
	in.Observed = m.observed()
	return in, nil
}

// observed reads the contact's location, device type and time zone from Segment's context.
func (m *message) observed() crm.Observed {
	str := func(v any) string {
		s, _ := v.(string)
		return strings.TrimSpace(s)
	}
	loc, _ := m.Context.Location.(map[string]any)
	dev, _ := m.Context.Device.(map[string]any)
	return crm.Observed{Country: str(loc["country"]), Region: str(loc["region"]), City: str(loc["city"]),
		DeviceType: str(dev["type"]), Timezone: str(m.Context.Timezone)}
}

func withKey(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for key, val := range m {
		out[key] = val
	}
	if v != "" && v != nil {
		out[k] = v
	}
	return out
}

// recordAll stores the events (and their contacts) in one transaction; only then does the
// caller get 200. The dispatcher takes it from there.
func (a *API) recordAll(w http.ResponseWriter, r *http.Request, events []crm.EventInput) error {
	inserted, err := crm.RecordEvents(r.Context(), a.DB, events)
	if err != nil {
		var re *crm.RecordError
		if errors.As(err, &re) && (strings.HasSuffix(r.URL.Path, "/batch") || strings.HasSuffix(r.URL.Path, "/b")) {
			for i := range re.Problems {
				re.Problems[i].Path = fmt.Sprintf("batch[%d].%s", re.Index, re.Problems[i].Path)
			}
		}
		return fmt.Errorf("record events: %w", err)
	}
	a.accepted(r, inserted, len(events)-inserted)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
	return nil
}
