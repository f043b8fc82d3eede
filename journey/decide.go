package journey

import (
	"encoding/json"
	"slices"
	"time"
)

// Heard is one event a run heard, with the times a condition's windows are measured from.
type Heard struct {
	Name       string
	Properties map[string]any
	OccurredAt time.Time
	// Changed lists the contact fields the event changed.
	Changed []string
	// Now is the time of the check; EnteredAt when the contact entered the journey.
	Now       time.Time
	EnteredAt time.Time
	// Trigger holds the properties of the event that started the run, which keyed values
	// ({trigger: cart_id}) are compared with.
	Trigger map[string]any
}

// Affects says whether the event can change the condition's answer. It is conservative: true
// unless the event is plainly beside the point (tag_added of another tag, an event whose
// properties miss the test's where filter, a change of another field).
func (c Condition) Affects(h Heard) bool {
	switch {
	case c.All != nil || c.Any != nil:
		for _, s := range append(append([]Condition(nil), c.All...), c.Any...) {
			if s.Affects(h) {
				return true
			}
		}
		return false
	case c.Not != nil:
		return c.Not.Affects(h)
	case c.Tag != "":
		tag, _ := h.Properties["tag"].(string)
		return (h.Name == EventTagAdded || h.Name == EventTagRemoved) && tag == c.Tag
	case c.Field != nil:
		return slices.Contains(h.Changed, c.Field.Name)
	case c.Event != nil && c.Event.From == "" && h.Name == c.Event.Name:
		where, ok := c.Event.Resolved(h.Trigger)
		if !ok {
			return false // no event has a property equal to a value the trigger lacks
		}
		for k, want := range where {
			if got, ok := h.Properties[k]; !ok || !jsonContains(got, want) {
				return false
			}
		}
		return true
	}
	return slices.Contains(c.Events(), h.Name)
}

// DecideFrom answers the condition from one event alone, when the event settles it: a run
// that hears "unsubscribed" needs no database to know that {event: unsubscribed} now holds,
// nor that {not: {event: unsubscribed}} no longer does; tag_added of tag T settles {tag: T}.
// decided is false when the event says nothing certain (a count, a field, an order total,
// any test the event does not name): the caller then asks the CRM.
func (c Condition) DecideFrom(h Heard) (holds, decided bool) {
	switch {
	case c.All != nil:
		all := true
		for _, s := range c.All {
			ok, known := s.DecideFrom(h)
			if known && !ok {
				return false, true
			}
			all = all && known
		}
		return all, all
	case c.Any != nil:
		all := true
		for _, s := range c.Any {
			ok, known := s.DecideFrom(h)
			if known && ok {
				return true, true
			}
			all = all && known
		}
		return false, all
	case c.Not != nil:
		ok, known := c.Not.DecideFrom(h)
		return !ok, known
	case c.Tag != "":
		tag, _ := h.Properties["tag"].(string)
		switch {
		case tag != c.Tag:
		case h.Name == EventTagAdded:
			return true, true
		case h.Name == EventTagRemoved:
			return false, true
		}
	case c.Event != nil:
		return c.Event.decideFrom(h), c.Event.decidable() && c.Event.decideFrom(h)
	}
	return false, false
}

// decidable says whether "at least once" is all the test asks, on the event log itself.
func (e *EventTest) decidable() bool {
	return e.From == "" && e.URL == "" && e.Product == "" && e.AtMost == nil && e.Exactly == nil &&
		(e.AtLeast == nil || *e.AtLeast <= 1)
}

// decideFrom says whether the heard event is one the test counts.
func (e *EventTest) decideFrom(h Heard) bool {
	if h.Name != e.Name {
		return false
	}
	switch {
	case e.Within != nil && h.OccurredAt.Before(h.Now.Add(-e.Within.D)):
		return false
	case e.Between != nil && (h.OccurredAt.Before(e.Between.From) || !h.OccurredAt.Before(e.Between.To)):
		return false
	case e.SinceEntry && h.OccurredAt.Before(h.EnteredAt):
		return false
	}
	where, ok := e.Resolved(h.Trigger)
	if !ok {
		return false
	}
	for k, want := range where {
		got, ok := h.Properties[k]
		if !ok || !jsonContains(got, want) {
			return false
		}
	}
	return true
}

// jsonContains is JSON containment, as PostgreSQL's @> answers it for the where filter: objects
// contain the other's keys with contained values, arrays contain each of the other's
// elements, scalars are equal.
func jsonContains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !jsonContains(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok {
			return false
		}
		for _, wv := range w {
			found := false
			for _, gv := range g {
				if jsonContains(gv, wv) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return scalarEqual(got, want)
}

// scalarEqual compares JSON scalars as JSON does: numbers by value, whatever Go type decoding
// gave them.
func scalarEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var fa, fb float64
	if json.Unmarshal(ja, &fa) == nil && json.Unmarshal(jb, &fb) == nil {
		return fa == fb
	}
	return string(ja) == string(jb)
}
