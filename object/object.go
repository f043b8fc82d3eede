// Package object holds custom object types: the things a business keeps about its contacts
// besides their fields (a subscription, a course enrolment, a vehicle), each type defined by
// a JSON Schema, its records attached to contacts and written through the API or by source
// events. It reads and checks type definitions and validates records, with paths; the CRM
// stores them. It is pure: no I/O.
package object

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/cairnhq/cairn/journey"
)

// Type is a custom object type.
//
//	name: Subscription
//	schema:
//	  type: object
//	  properties:
//	    plan: {type: string}
//	    status: {enum: [active, past_due, cancelled]}
//	    renews: {type: string, format: date}
//	  required: [status]
//	sources:
//	  - {event: Subscription Updated, id: subscription_id}
type Type struct {
	ID     string          `json:"id"`
	Name   string          `json:"name,omitempty"`
	Schema json.RawMessage `json:"schema"`
	// Sources are events that write records: the property id names the record, and the
	// event's properties that the schema names are its fields (merged into the record's).
	Sources []Source `json:"sources,omitempty"`
}

// Source is an event that writes records of a type.
type Source struct {
	Event string `json:"event"`
	ID    string `json:"id"`
}

// ReservedFields cannot name a record's field: object events carry object, record and
// changed beside the fields, and object conditions use where, at_least, at_most and exactly.
var ReservedFields = []string{"object", "record", "changed", "where", "at_least", "at_most", "exactly"}

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	fieldPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// IDProblem says why an id cannot name an object type or a record ("" when it can).
func IDProblem(id string) string {
	if !idPattern.MatchString(id) {
		return fmt.Sprintf("%q must be lower-case letters, digits, '-', '_' or '.', starting with a letter or digit (at most 63)", id)
	}
	return ""
}

// RecordIDProblem says why a value cannot name a record ("" when it can): any text of 1 to 255
// characters, or a whole number.
func RecordIDProblem(id string) string {
	if strings.TrimSpace(id) == "" || len(id) > 255 {
		return "a record id is a text of 1 to 255 bytes"
	}
	return ""
}

// Decode reads a type definition (YAML or JSON) and checks it: the schema compiles (JSON
// Schema 2020-12, formats asserted, no remote references), describes an object whose
// property names are plain names and not reserved, and the sources name events and id
// properties. Every problem comes with its path.
func Decode(id string, doc []byte) (*Type, error) {
	var raw struct {
		ID      string   `json:"id"`
		Name    string   `json:"name"`
		Schema  any      `json:"schema"`
		Sources []Source `json:"sources"`
	}
	n, err := journey.Parse(doc)
	if err != nil {
		return nil, err
	}
	if err := n.Decode(&rawYAML{&raw}); err != nil {
		return nil, &journey.ValidationError{Problems: []journey.Problem{{Message: "an object type is {name, schema, sources}: " + err.Error()}}}
	}
	var probs []journey.Problem
	add := func(path, format string, args ...any) {
		probs = append(probs, journey.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if raw.ID != "" && raw.ID != id {
		add("id", "the document's id %q does not match the URL's %q", raw.ID, id)
	}
	t := &Type{ID: id, Name: raw.Name, Sources: raw.Sources}
	if raw.Schema == nil {
		add("schema", "is required: a JSON Schema of the records, {type: object, properties: {…}}")
	} else {
		b, err := json.Marshal(raw.Schema)
		if err != nil {
			add("schema", "is not JSON: %v", err)
		} else {
			t.Schema = b
			probs = append(probs, schemaProblems(raw.Schema)...)
		}
	}
	for i, s := range raw.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		switch {
		case strings.TrimSpace(s.Event) == "":
			add(p+".event", "is required: the event that writes records")
		case journey.ReservedForTrack(s.Event):
			add(p+".event", "%q is a name Cairn records itself: a source is an event sent to Cairn", s.Event)
		}
		if strings.TrimSpace(s.ID) == "" {
			add(p+".id", "is required: the event's property that names the record")
		}
		for k := range i {
			if raw.Sources[k].Event == s.Event {
				add(p+".event", "%q is already sources[%d]", s.Event, k)
			}
		}
	}
	if len(probs) > 0 {
		return nil, &journey.ValidationError{Problems: probs}
	}
	return t, nil
}

// rawYAML decodes a YAML node through JSON, so that YAML and JSON documents read alike.
type rawYAML struct{ v any }

func (r *rawYAML) UnmarshalYAML(unmarshal func(any) error) error {
	var generic any
	if err := unmarshal(&generic); err != nil {
		return err
	}
	b, err := json.Marshal(normalize(generic))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(r.v)
}

// normalize turns YAML's map[string]any (and map[any]any) values into JSON-ready ones.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = normalize(val)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[fmt.Sprint(k)] = normalize(val)
		}
		return out
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	}
	return v
}

// schemaProblems checks a schema: it compiles, and describes an object with plain,
// unreserved property names.
func schemaProblems(schema any) []journey.Problem {
	var probs []journey.Problem
	obj, ok := schema.(map[string]any)
	if !ok {
		return []journey.Problem{{Path: "schema", Message: "must be a JSON Schema object such as {type: object, properties: {…}}"}}
	}
	if typ, ok := obj["type"]; !ok || typ != "object" {
		probs = append(probs, journey.Problem{Path: "schema.type", Message: "must be object: a record is an object of fields"})
	}
	props, _ := obj["properties"].(map[string]any)
	if len(props) == 0 {
		probs = append(probs, journey.Problem{Path: "schema.properties", Message: "must name the record's fields"})
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := "schema.properties." + name
		switch {
		case !fieldPattern.MatchString(name):
			probs = append(probs, journey.Problem{Path: p, Message: fmt.Sprintf("%q is not a field name: letters, digits and _, not starting with a digit (at most 63)", name)})
		case contains(ReservedFields, name):
			probs = append(probs, journey.Problem{Path: p, Message: fmt.Sprintf("%q is reserved (%s)", name, strings.Join(ReservedFields, ", "))})
		}
	}
	if _, err := compile(schema); err != nil {
		probs = append(probs, compileProblems(err)...)
	}
	return probs
}

// Schema is a compiled record schema.
type Schema struct {
	s      *jsonschema.Schema
	fields []string
}

// Fields are the field names the schema's properties give.
func (s *Schema) Fields() []string { return s.fields }

// noLoader refuses every reference outside the schema itself: a definition must not make the
// CRM fetch URLs or read files.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: a schema may only refer to itself ($ref: \"#/…\"), not to other documents", url)
}

const schemaURL = "cairn:///object.json"

func compile(schema any) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, schema); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
}

var (
	cacheMu sync.Mutex
	cache   = map[[32]byte]*Schema{}
)

// Compile compiles a stored schema, remembering it by its content.
func Compile(raw json.RawMessage) (*Schema, error) {
	key := sha256.Sum256(raw)
	cacheMu.Lock()
	s, ok := cache[key]
	cacheMu.Unlock()
	if ok {
		return s, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("object schema: %w", err)
	}
	cs, err := compile(doc)
	if err != nil {
		return nil, fmt.Errorf("object schema: %w", err)
	}
	s = &Schema{s: cs}
	if obj, ok := doc.(map[string]any); ok {
		props, _ := obj["properties"].(map[string]any)
		for name := range props {
			s.fields = append(s.fields, name)
		}
		sort.Strings(s.fields)
	}
	cacheMu.Lock()
	if len(cache) > 1000 {
		clear(cache)
	}
	cache[key] = s
	cacheMu.Unlock()
	return s, nil
}

// Validate checks a record's fields, each problem under base ("fields", "properties",
// `records["sub_1"]`).
func (s *Schema) Validate(fields map[string]any, base string) []journey.Problem {
	// Through JSON, so numbers are what the validator expects whatever decoded them.
	b, err := json.Marshal(fields)
	if err != nil {
		return []journey.Problem{{Path: base, Message: err.Error()}}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return []journey.Problem{{Path: base, Message: err.Error()}}
	}
	err = s.s.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []journey.Problem{{Path: base, Message: err.Error()}}
	}
	return leafProblems(ve, base)
}

var printer = message.NewPrinter(language.English)

// leafProblems flattens a validation error into its leaves, each at its instance path.
func leafProblems(ve *jsonschema.ValidationError, base string) []journey.Problem {
	var out []journey.Problem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, journey.Problem{Path: pointerPath(base, e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(a, b int) bool { return out[a].Path < out[b].Path })
	if len(out) > journey.MaxProblems {
		out = out[:journey.MaxProblems]
	}
	return out
}

// compileProblems reads a schema's compile error: where the schema breaks its metaschema, or
// another reason.
func compileProblems(err error) []journey.Problem {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			return leafProblems(ve, "schema")
		}
	}
	msg := strings.ReplaceAll(err.Error(), schemaURL, "schema")
	return []journey.Problem{{Path: "schema", Message: msg}}
}

// pointerPath writes a JSON pointer's tokens as a path under base: fields.renews,
// schema.properties.plan.type, fields.tags[2].
func pointerPath(base string, tokens []string) string {
	p := base
	for _, t := range tokens {
		if isIndex(t) {
			p += "[" + t + "]"
		} else if p == "" {
			p = t
		} else {
			p += "." + t
		}
	}
	return p
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
