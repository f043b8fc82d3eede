package journey

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ObjectTest asks whether the contact has a record of a custom object type (a subscription, a
// course enrolment, a vehicle) that matches: where holds values the record's fields must have
// (as an event's where), and every other key is a test on one of its fields, with the field
// test's operators; all of them hold for the same record. Without a count it means at least
// one such record.
//
//	{object: subscription, where: {status: active}, renews: {within_next: 7d}}
type ObjectTest struct {
	Type  string            `json:"type"`
	Where map[string]any    `json:"where,omitempty"`
	Keys  map[string]string `json:"keys,omitempty"`
	// Fields are the tests on the record's fields (FieldTest.Name is the field).
	Fields  []FieldTest `json:"fields,omitempty"`
	AtLeast *int        `json:"at_least,omitempty"`
	AtMost  *int        `json:"at_most,omitempty"`
	Exactly *int        `json:"exactly,omitempty"`
}

// Counts is the test's count as an event test's, so both are counted alike.
func (o *ObjectTest) Counts() *EventTest {
	return &EventTest{AtLeast: o.AtLeast, AtMost: o.AtMost, Exactly: o.Exactly}
}

// Resolved is where with its keyed values read from the trigger (see EventTest.Resolved).
func (o *ObjectTest) Resolved(trigger map[string]any) (map[string]any, bool) {
	return (&EventTest{Where: o.Where, Keys: o.Keys}).Resolved(trigger)
}

// String renders the test for summaries.
func (o *ObjectTest) String() string {
	s := "object " + o.Type
	var parts []string
	keys := make([]string, 0, len(o.Where))
	for k := range o.Where {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s = %v", k, o.Where[k]))
	}
	for _, f := range o.Fields {
		parts = append(parts, Condition{Field: &f}.String())
	}
	if len(parts) > 0 {
		s += " where " + strings.Join(parts, ", ")
	}
	s += keysString(o.Keys)
	switch {
	case o.AtLeast != nil:
		s += fmt.Sprintf(", at least %d", *o.AtLeast)
	case o.AtMost != nil:
		s += fmt.Sprintf(", at most %d", *o.AtMost)
	case o.Exactly != nil:
		s += fmt.Sprintf(", exactly %d", *o.Exactly)
	}
	return s
}

// isObjectTest says whether a condition mapping is an object test (it has an object key).
func isObjectTest(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "object" {
			return true
		}
	}
	return false
}

// objectTestKeys are an object test's own keys; any other key names a field of the record.
var objectTestKeys = []string{"object", "where", "at_least", "at_most", "exactly"}

func (d *decoder) objectTest(n *yaml.Node, path string) *ObjectTest {
	o := &ObjectTest{}
	seen := map[string]bool{}
	counts := 0
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.fail(k, p, "is given twice")
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "object":
			if o.Type = d.str(v, p); o.Type != "" && !idPattern.MatchString(o.Type) {
				d.fail(v, p, "%q is not an object type id", o.Type)
			}
		case "where":
			o.Where, o.Keys = d.conditionWhere(v, path, nil)
		case "at_least", "at_most", "exactly":
			counts++
			x, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || x < 0 {
				d.fail(v, p, "must be a whole number ≥ 0, not %s", describe(v))
				continue
			}
			switch k.Value {
			case "at_least":
				o.AtLeast = &x
			case "at_most":
				o.AtMost = &x
			default:
				o.Exactly = &x
			}
		default:
			if v.Kind != yaml.MappingNode {
				d.fail(v, p, "a test on the record's field %s is a mapping of one operator, such as {equals: …} or {within_next: 7d} (an object test's own keys: %s)",
					k.Value, strings.Join(objectTestKeys, ", "))
				continue
			}
			// The field test's decoder reads it: {field: <name>, <operator>: <value>}.
			synth := &yaml.Node{Kind: yaml.MappingNode, Line: v.Line, Column: v.Column,
				Content: append([]*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: "field"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: k.Value}}, v.Content...)}
			if len(o.Fields) >= MaxListItems {
				d.fail(k, p, "an object test takes at most %d field tests", MaxListItems)
				continue
			}
			o.Fields = append(o.Fields, *d.fieldTest(synth, p))
		}
	}
	if o.Type == "" && n.Kind == yaml.MappingNode && !seen["object"] {
		d.fail(n, join(path, "object"), "is required: the object type")
	}
	if counts > 1 {
		d.fail(n, path, "give one of at_least, at_most, exactly")
	}
	return o
}

// ObjectRef is an object test found in a document, with its path.
type ObjectRef struct {
	Path string
	Test *ObjectTest
}

// ObjectRefs lists every object test in the condition, with paths under base.
func (c *Condition) ObjectRefs(base string) []ObjectRef {
	var out []ObjectRef
	c.tests(base, func(c *Condition, path string) {
		if c.Object != nil {
			out = append(out, ObjectRef{Path: path, Test: c.Object})
		}
	})
	return out
}

// ObjectRefs lists every object test in the journey's conditions, with their paths.
func (j *Journey) ObjectRefs() []ObjectRef {
	var out []ObjectRef
	j.conditions(func(c *Condition, path string) { out = append(out, c.ObjectRefs(path)...) })
	return out
}
