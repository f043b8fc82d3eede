package journey

import (
	"fmt"
	"sort"
	"strings"
)

// Condition is Cairn's one condition language, shared by segments, if/else branches,
// wait-until steps, goals and exits. Exactly one of its fields is set.
//
//	all: [...] / any: [...] / not: {...}
//	{tag: vip}
//	{field: plan, equals: pro}            (operators: see FieldOps)
//	{score: {gte: 50}}                    ({score: {name: engagement, between: [10, 50]}})
//	{event: Order Completed, within: 30d, at_least: 2, where: {currency: EUR}}
type Condition struct {
	All   []Condition `json:"all,omitempty"`
	Any   []Condition `json:"any,omitempty"`
	Not   *Condition  `json:"not,omitempty"`
	Tag   string      `json:"tag,omitempty"`
	Field *FieldTest  `json:"field,omitempty"`
	Score *ScoreTest  `json:"score,omitempty"`
	Event *EventTest  `json:"event,omitempty"`
}

// FieldTest compares a contact field (a trait) with a value.
type FieldTest struct {
	Name string `json:"name"`
	Op   string `json:"op"`
	// Value is a string, number or boolean; Range is set for between.
	Value any       `json:"value,omitempty"`
	Range []float64 `json:"range,omitempty"`
	// Within is the window of within_last (a date field in the last N).
	Within *Duration `json:"within,omitempty"`
}

// Field operators.
const (
	OpEquals     = "equals"
	OpNotEquals  = "not_equals"
	OpContains   = "contains"
	OpStartsWith = "starts_with"
	OpGT         = "gt"
	OpGTE        = "gte"
	OpLT         = "lt"
	OpLTE        = "lte"
	OpBetween    = "between"
	OpIsSet      = "is_set"
	OpIsBlank    = "is_blank"
	OpBefore     = "before"
	OpAfter      = "after"
	OpWithinLast = "within_last"
)

// FieldOps lists the field operators in documentation order.
var FieldOps = []string{OpEquals, OpNotEquals, OpContains, OpStartsWith, OpGT, OpGTE, OpLT, OpLTE, OpBetween, OpIsSet, OpIsBlank, OpBefore, OpAfter, OpWithinLast}

// ScoreTest bounds a lead score; Name "" is the default score.
type ScoreTest struct {
	Name string   `json:"name,omitempty"`
	GTE  *float64 `json:"gte,omitempty"`
	LTE  *float64 `json:"lte,omitempty"`
	GT   *float64 `json:"gt,omitempty"`
	LT   *float64 `json:"lt,omitempty"`
}

// EventTest asks whether the contact performed an event: how often, in which window, with
// which properties. Without a count it means "at least once"; wrap it in not for "did not".
type EventTest struct {
	Name string `json:"name"`
	// Within limits the window to the last N before now.
	Within *Duration `json:"within,omitempty"`
	// SinceEntry limits the window to events since the contact entered the journey.
	SinceEntry bool `json:"since_entry,omitempty"`
	// Where holds property values that must all match (JSON containment).
	Where   map[string]any `json:"where,omitempty"`
	AtLeast *int           `json:"at_least,omitempty"`
	AtMost  *int           `json:"at_most,omitempty"`
	Exactly *int           `json:"exactly,omitempty"`
}

// Kind names which test the condition is, for messages.
func (c Condition) Kind() string {
	switch {
	case c.All != nil:
		return "all"
	case c.Any != nil:
		return "any"
	case c.Not != nil:
		return "not"
	case c.Tag != "":
		return "tag"
	case c.Field != nil:
		return "field"
	case c.Score != nil:
		return "score"
	case c.Event != nil:
		return "event"
	}
	return ""
}

// Events lists the event names the condition depends on, sorted, so a run knows which
// signals are worth a re-check. Tag and field tests depend on tag_added / tag_removed /
// identify events.
func (c Condition) Events() []string {
	set := map[string]bool{}
	c.collectEvents(set)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c Condition) collectEvents(set map[string]bool) {
	for _, s := range c.All {
		s.collectEvents(set)
	}
	for _, s := range c.Any {
		s.collectEvents(set)
	}
	if c.Not != nil {
		c.Not.collectEvents(set)
	}
	switch {
	case c.Tag != "":
		set["tag_added"], set["tag_removed"] = true, true
	case c.Field != nil:
		set["identify"] = true
	case c.Score != nil:
		set["score_changed"] = true
	case c.Event != nil:
		set[c.Event.Name] = true
	}
}

// String renders the condition compactly for summaries ("tag vip and not event X in 7d").
func (c Condition) String() string {
	join := func(list []Condition, sep string) string {
		parts := make([]string, len(list))
		for i, s := range list {
			parts[i] = s.String()
		}
		return "(" + strings.Join(parts, sep) + ")"
	}
	switch c.Kind() {
	case "all":
		return join(c.All, " and ")
	case "any":
		return join(c.Any, " or ")
	case "not":
		return "not " + c.Not.String()
	case "tag":
		return "tag " + c.Tag
	case "field":
		f := c.Field
		switch f.Op {
		case OpIsSet, OpIsBlank:
			return fmt.Sprintf("%s %s", f.Name, strings.ReplaceAll(f.Op, "_", " "))
		case OpBetween:
			return fmt.Sprintf("%s between %v and %v", f.Name, f.Range[0], f.Range[1])
		case OpWithinLast:
			return fmt.Sprintf("%s within last %s", f.Name, f.Within)
		}
		return fmt.Sprintf("%s %s %v", f.Name, strings.ReplaceAll(f.Op, "_", " "), f.Value)
	case "score":
		s := c.Score
		name := "score"
		if s.Name != "" {
			name = "score " + s.Name
		}
		var b []string
		for _, p := range []struct {
			op string
			v  *float64
		}{{">=", s.GTE}, {">", s.GT}, {"<=", s.LTE}, {"<", s.LT}} {
			if p.v != nil {
				b = append(b, fmt.Sprintf("%s %v", p.op, *p.v))
			}
		}
		return name + " " + strings.Join(b, " and ")
	case "event":
		e := c.Event
		s := "event " + e.Name
		switch {
		case e.AtLeast != nil:
			s += fmt.Sprintf(" at least %d times", *e.AtLeast)
		case e.AtMost != nil:
			s += fmt.Sprintf(" at most %d times", *e.AtMost)
		case e.Exactly != nil:
			s += fmt.Sprintf(" exactly %d times", *e.Exactly)
		}
		if e.Within != nil {
			s += " within " + e.Within.String()
		}
		if e.SinceEntry {
			s += " since entry"
		}
		return s
	}
	return "?"
}
