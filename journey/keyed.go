package journey

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Keyed conditions compare an event's property with a property of the run's trigger event:
//
//	{event: Order Completed, where: {cart_id: {trigger: cart_id}}, since_entry: true}
//
// holds once an Order Completed arrives whose cart_id is the cart_id of the cart_abandoned
// that started the run. In a document a keyed value is written inside where; in the Go type it
// is kept apart from the literal values, in EventTest.Keys (property → trigger property), so
// that literal values stay JSON containment as they were.

// TriggerRef is the key of a where value that names a trigger property: {trigger: cart_id}.
const TriggerRef = "trigger"

// triggerInSegment says why a segment cannot use {trigger: ...}.
const triggerInSegment = "only has a meaning in a journey (a property of the event that started the run); a segment has no trigger: write the value itself"

// triggerInTrigger says why a trigger's where cannot use {trigger: ...}.
const triggerInTrigger = "a trigger's where compares with values as written; {trigger: …} belongs in the conditions of the run it starts"

// conditionWhere reads a condition's where: literal values into into (made when nil), and
// {trigger: name} values into keys (made when needed).
func (d *decoder) conditionWhere(n *yaml.Node, path string, into map[string]any) (map[string]any, map[string]string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, join(path, "where"), "must be a mapping of property: value")
		return into, nil
	}
	if into == nil {
		into = map[string]any{}
	}
	if d.tooMany(n, join(path, "where"), "properties") {
		return into, nil
	}
	var keys map[string]string
	for i := 0; i+1 < len(n.Content); i += 2 {
		prop, v := n.Content[i].Value, n.Content[i+1]
		p := join(path, "where."+prop)
		if v.Kind != yaml.MappingNode {
			into[prop] = d.scalar(v, p)
			continue
		}
		f := d.fields(v, p, TriggerRef)
		if f == nil || f[TriggerRef] == nil {
			d.fail(v, p, "must be a value, or {trigger: <property of the trigger event>}")
			continue
		}
		name := d.str(f[TriggerRef], join(p, TriggerRef))
		switch {
		case name == "" && f[TriggerRef].Kind == yaml.ScalarNode:
			d.fail(f[TriggerRef], join(p, TriggerRef), "needs the name of a property of the trigger event")
		case d.segment:
			d.fail(f[TriggerRef], join(p, TriggerRef), triggerInSegment)
		case name != "":
			if keys == nil {
				keys = map[string]string{}
			}
			keys[prop] = name
		}
	}
	return into, keys
}

// keysString renders keyed values for summaries: " where cart_id = trigger's cart_id".
func keysString(keys map[string]string) string {
	if len(keys) == 0 {
		return ""
	}
	props := make([]string, 0, len(keys))
	for p := range keys {
		props = append(props, p)
	}
	sort.Strings(props)
	parts := make([]string, len(props))
	for i, p := range props {
		parts[i] = fmt.Sprintf("%s = trigger's %s", p, keys[p])
	}
	return " where " + strings.Join(parts, " and ")
}

// Resolved is the where filter with each keyed property set to the trigger's value, and ok
// false when the trigger lacks one of them: no event then has a property equal to it, so the
// test counts none.
func (e *EventTest) Resolved(trigger map[string]any) (where map[string]any, ok bool) {
	if len(e.Keys) == 0 {
		return e.Where, true
	}
	where = make(map[string]any, len(e.Where)+len(e.Keys))
	for k, v := range e.Where {
		where[k] = v
	}
	for prop, key := range e.Keys {
		v, found := trigger[key]
		if !found || v == nil {
			return nil, false
		}
		where[prop] = v
	}
	return where, true
}

// UsesTrigger reports whether the condition compares with a property of the trigger event.
func (c Condition) UsesTrigger() bool {
	for _, s := range c.All {
		if s.UsesTrigger() {
			return true
		}
	}
	for _, s := range c.Any {
		if s.UsesTrigger() {
			return true
		}
	}
	switch {
	case c.Not != nil:
		return c.Not.UsesTrigger()
	case c.Event != nil:
		return len(c.Event.Keys) > 0
	case c.Object != nil:
		return len(c.Object.Keys) > 0
	}
	return false
}
