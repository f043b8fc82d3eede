package journey

import (
	"fmt"
	"sort"
	"strings"
	"time"
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

	// List holds when the contact is subscribed to the list.
	List string `json:"list,omitempty"`
	// TotalSpent bounds the sum of the contact's Order Completed totals, over SpentWithin
	// when set.
	TotalSpent  *ScoreTest `json:"total_spent,omitempty"`
	SpentWithin *Duration  `json:"spent_within,omitempty"`
	// Deal holds when the contact has an open deal in the pipeline (and stage, and value range).
	Deal *DealTest `json:"deal,omitempty"`
	// OpenTask holds when the contact has a task not done.
	OpenTask bool `json:"open_task,omitempty"`
	// InJourney / CompletedJourney: the contact is in journey J now / has finished a run of it.
	InJourney        string `json:"in_journey,omitempty"`
	CompletedJourney string `json:"completed_journey,omitempty"`
	// CreatedWithin holds for contacts created in the last N.
	CreatedWithin *Duration `json:"created_within,omitempty"`
	// GoalMet holds when the contact met the goal in a run of the journey.
	GoalMet *GoalRef `json:"goal_met,omitempty"`
	// ViewedNotPurchased holds when the contact viewed a product (in the window) and has not
	// bought that product in an order at or after the view.
	ViewedNotPurchased *ViewTest `json:"viewed_not_purchased,omitempty"`
	// Object holds when the contact has a record of a custom object type that matches
	// (object_condition.go).
	Object *ObjectTest `json:"object,omitempty"`
}

// ViewTest narrows viewed_not_purchased: views in the last Within, of one product (a
// product_id or sku).
type ViewTest struct {
	Within  *Duration `json:"within,omitempty"`
	Product string    `json:"product,omitempty"`
}

// Period is a fixed time window: From included, To excluded, so consecutive windows
// ([Jan 1, Feb 1], [Feb 1, Mar 1]) count every moment once.
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// What the purchased and abandoned_cart shortcuts read instead of the event log.
const (
	FromOrders = "orders"
	FromCarts  = "carts"
)

// GoalRef names a goal of a journey.
type GoalRef struct {
	Journey string `json:"journey"`
	Goal    string `json:"goal"`
}

// DealTest describes a deal the contact must have open.
type DealTest struct {
	Pipeline string `json:"pipeline"`
	Stage    string `json:"stage,omitempty"`
	// StageAtLeast holds for a deal in that stage or one after it in the pipeline's order.
	StageAtLeast string     `json:"stage_at_least,omitempty"`
	Value        *ScoreTest `json:"value,omitempty"`
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
	// OpWithinNext holds when a date field falls in the next N (a renewal within 7 days).
	OpWithinNext = "within_next"
	// OpAnniversary holds when a date field's month and day are today's.
	OpAnniversary = "anniversary"
)

// FieldOps lists the field operators in documentation order.
var FieldOps = []string{OpEquals, OpNotEquals, OpContains, OpStartsWith, OpGT, OpGTE, OpLT, OpLTE, OpBetween, OpIsSet, OpIsBlank, OpBefore, OpAfter, OpWithinLast, OpWithinNext, OpAnniversary}

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
	// Between limits the window to a fixed period.
	Between *Period `json:"between,omitempty"`
	// From, when set, says the test reads Cairn's order (FromOrders) or cart (FromCarts)
	// records rather than the event log: an order reported twice counts once. Empty for
	// event tests, and for purchased and abandoned_cart stored before those records existed.
	From string `json:"from,omitempty"`
	// SinceEntry limits the window to events since the contact entered the journey.
	SinceEntry bool `json:"since_entry,omitempty"`
	// Where holds property values that must all match (JSON containment).
	Where map[string]any `json:"where,omitempty"`
	// Keys are where's keyed values: property → the trigger event's property it must equal
	// ({cart_id: {trigger: cart_id}}), resolved when the condition is checked (keyed.go).
	Keys map[string]string `json:"keys,omitempty"`
	// URL is a glob on a page event's path or url; Product an order's product_id or sku.
	URL     string `json:"url,omitempty"`
	Product string `json:"product,omitempty"`
	AtLeast *int   `json:"at_least,omitempty"`
	AtMost  *int   `json:"at_most,omitempty"`
	Exactly *int   `json:"exactly,omitempty"`
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
	case c.List != "":
		return "list"
	case c.TotalSpent != nil:
		return "total_spent"
	case c.Deal != nil:
		return "deal"
	case c.OpenTask:
		return "open_task"
	case c.InJourney != "":
		return "in_journey"
	case c.CompletedJourney != "":
		return "completed_journey"
	case c.CreatedWithin != nil:
		return "created_within"
	case c.GoalMet != nil:
		return "goal_met"
	case c.ViewedNotPurchased != nil:
		return "viewed_not_purchased"
	case c.Object != nil:
		return "object"
	}
	return ""
}

// Events lists what the condition depends on, sorted, so a run knows which signals are worth
// a re-check and the dispatcher knows which runs to signal: event names, and FieldInterest(f)
// for each field f it tests (an event that changes the field carries it, whatever its name:
// an identify, a track with context traits, another journey's update_fields).
func (c Condition) Events() []string {
	return c.events(false)
}

// LegacyEvents is what Events said before fields were heard by name: a field test listened
// for identify only. Runs whose histories started before that change keep listening to these
// names, so their histories replay.
func (c Condition) LegacyEvents() []string {
	return c.events(true)
}

func (c Condition) events(legacy bool) []string {
	set := map[string]bool{}
	c.collectEvents(set, legacy)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// FieldInterest is the interest a field test has in changes of the field: an event that
// changed field f is also heard as FieldInterest(f).
func FieldInterest(field string) string { return "field:" + field }

func (c Condition) collectEvents(set map[string]bool, legacy bool) {
	for _, s := range c.All {
		s.collectEvents(set, legacy)
	}
	for _, s := range c.Any {
		s.collectEvents(set, legacy)
	}
	if c.Not != nil {
		c.Not.collectEvents(set, legacy)
	}
	switch {
	case c.Tag != "":
		set[EventTagAdded], set[EventTagRemoved] = true, true
	case c.Field != nil && legacy:
		set[EventIdentify] = true
	case c.Field != nil:
		set[FieldInterest(c.Field.Name)] = true
	case c.Score != nil:
		set[EventScoreChanged] = true
	case c.Event != nil:
		set[c.Event.Name] = true
		if c.Event.From == FromCarts && !legacy {
			// A cart's state moves with every cart event and with an order.
			for _, n := range CartEvents {
				set[n] = true
			}
			set[EventOrderCompleted] = true
		}
	case c.List != "":
		set[EventListSubscribed], set[EventListUnsubscribed] = true, true
	case c.TotalSpent != nil:
		set[EventOrderCompleted] = true
	case c.Deal != nil:
		set[EventDealStageChanged], set[EventDealCreated] = true, true
	case c.OpenTask:
		set[EventTaskCreated] = true
	case c.GoalMet != nil:
		set[EventGoalMet] = true
	case c.ViewedNotPurchased != nil:
		set[EventProductViewed], set[EventOrderCompleted] = true, true
	case c.InJourney != "" || c.CompletedJourney != "":
		set[EventJourneyCompleted], set[EventJourneyExited] = true, true
	case c.Object != nil:
		set[EventObjectCreated], set[EventObjectChanged], set[EventObjectDeleted] = true, true, true
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
		case OpIsSet, OpIsBlank, OpAnniversary:
			return fmt.Sprintf("%s %s", f.Name, strings.ReplaceAll(f.Op, "_", " "))
		case OpBetween:
			return fmt.Sprintf("%s between %v and %v", f.Name, f.Range[0], f.Range[1])
		case OpWithinLast:
			return fmt.Sprintf("%s within last %s", f.Name, f.Within)
		case OpWithinNext:
			return fmt.Sprintf("%s within next %s", f.Name, f.Within)
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
		if e.Between != nil {
			s += " between " + e.Between.String()
		}
		if e.SinceEntry {
			s += " since entry"
		}
		if e.URL != "" {
			s += " url " + e.URL
		}
		if e.Product != "" {
			s += " product " + e.Product
		}
		return s + keysString(e.Keys)
	case "list":
		return "list " + c.List
	case "total_spent":
		return "total spent " + strings.TrimPrefix(Condition{Score: c.TotalSpent}.String(), "score ")
	case "deal":
		if c.Deal.StageAtLeast != "" {
			return "deal in " + c.Deal.Pipeline + "/" + c.Deal.StageAtLeast + " or later"
		}
		return "deal in " + c.Deal.Pipeline + "/" + c.Deal.Stage
	case "open_task":
		return "has open task"
	case "in_journey":
		return "in journey " + c.InJourney
	case "completed_journey":
		return "completed journey " + c.CompletedJourney
	case "created_within":
		return "created within " + c.CreatedWithin.String()
	case "goal_met":
		return "goal " + c.GoalMet.Goal + " met in " + c.GoalMet.Journey
	case "viewed_not_purchased":
		v := c.ViewedNotPurchased
		s := "viewed a product"
		if v.Product != "" {
			s = "viewed product " + v.Product
		}
		if v.Within != nil {
			s += " within " + v.Within.String()
		}
		return s + " and did not buy it"
	case "object":
		return c.Object.String()
	}
	return "?"
}

// String shows the period as its two ends, dates when they are midnight UTC.
func (p Period) String() string {
	f := func(t time.Time) string {
		if t.Equal(t.UTC().Truncate(24 * time.Hour)) {
			return t.UTC().Format("2006-01-02")
		}
		return t.Format(time.RFC3339)
	}
	return f(p.From) + " to " + f(p.To) + " (end excluded)"
}

// FieldRef is a field test found in a document, with its path.
type FieldRef struct {
	Path string
	Test *FieldTest
}

// FieldRefs lists every field test in the condition, with paths under base.
func (c *Condition) FieldRefs(base string) []FieldRef {
	var out []FieldRef
	c.tests(base, func(c *Condition, path string) {
		if c.Field != nil {
			out = append(out, FieldRef{Path: path, Test: c.Field})
		}
	})
	return out
}

// FieldRefs lists every field test in the journey's conditions, with their paths.
func (j *Journey) FieldRefs() []FieldRef {
	var out []FieldRef
	j.conditions(func(c *Condition, path string) { out = append(out, c.FieldRefs(path)...) })
	return out
}
