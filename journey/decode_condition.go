package journey

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ConditionKinds are the keys that say what a condition tests.
var ConditionKinds = []string{"all", "any", "not", "tag", "field", "score", "event",
	"list", "opened", "clicked", "visited", "purchased", "abandoned_cart", "total_spent", "deal", "open_task",
	"in_journey", "completed_journey", "created_within", "goal_met", "viewed_not_purchased", "object"}

// eventShortcuts are condition kinds that are event tests on a known event: {opened: welcome}
// is {event: email_opened, where: {template: welcome}}, and they take the event test's
// within, at_least, ... keys.
var eventShortcuts = map[string]struct{ event, prop string }{
	"opened":         {"email_opened", "template"},
	"clicked":        {"email_clicked", "template"},
	"visited":        {"page", ""},
	"purchased":      {"Order Completed", ""},
	"abandoned_cart": {"cart_abandoned", ""},
}

// DecodeCondition reads a standalone condition from YAML or JSON, as a journey's conditions
// are read (since_entry is allowed; DecodeSegmentCondition is for segments).
func DecodeCondition(doc []byte) (*Condition, error) {
	n, err := parse(doc, "the condition is empty")
	if err != nil {
		return nil, err
	}
	return DecodeConditionNode(n, "")
}

// DecodeConditionNode reads a condition from an already parsed document node, reporting
// problems under path (e.g. "condition").
func DecodeConditionNode(n *yaml.Node, path string) (*Condition, error) {
	return decodeConditionNode(&decoder{}, n, path)
}

// DecodeSegmentCondition reads a segment's condition from an already parsed node (see Parse):
// as DecodeConditionNode, and refusing what only has a meaning inside a journey (since_entry:
// a segment has no entry).
func DecodeSegmentCondition(n *yaml.Node, path string) (*Condition, error) {
	return decodeConditionNode(&decoder{segment: true}, n, path)
}

func decodeConditionNode(d *decoder, n *yaml.Node, path string) (*Condition, error) {
	c := d.condition(n, path)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (d *decoder) condition(n *yaml.Node, path string) Condition {
	var c Condition
	d.depth++
	defer func() { d.depth-- }()
	if !d.enterCondition(n, path) {
		return c
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "a condition must be a mapping such as {tag: vip}, not %s", describe(n))
		return c
	}
	var kinds []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if contains(ConditionKinds, n.Content[i].Value) {
			kinds = append(kinds, n.Content[i].Value)
		}
	}
	if isObjectTest(n) {
		kinds = []string{"object"} // its other keys are the record's fields, whatever their names
	}
	switch len(kinds) {
	case 0:
		keys := []string{}
		for i := 0; i < len(n.Content); i += 2 {
			keys = append(keys, n.Content[i].Value)
		}
		d.fail(n, path, "unknown condition %q (known: %s)", strings.Join(keys, ", "), strings.Join(ConditionKinds, ", "))
		return c
	case 1:
	default:
		d.fail(n, path, "has %s: use all or any to combine conditions", strings.Join(kinds, " and "))
		return c
	}
	switch kinds[0] {
	case "all", "any":
		f := d.fields(n, path, kinds[0])
		list := d.conditions(f[kinds[0]], join(path, kinds[0]))
		if kinds[0] == "all" {
			c.All = list
		} else {
			c.Any = list
		}
	case "not":
		f := d.fields(n, path, "not")
		inner := d.condition(f["not"], join(path, "not"))
		c.Not = &inner
	case "tag":
		f := d.fields(n, path, "tag")
		if c.Tag = d.str(f["tag"], join(path, "tag")); c.Tag == "" && f["tag"].Kind == yaml.ScalarNode {
			d.fail(f["tag"], join(path, "tag"), "needs a tag name")
		}
	case "field":
		c.Field = d.fieldTest(n, path)
	case "score":
		f := d.fields(n, path, "score")
		c.Score = d.scoreTest(f["score"], join(path, "score"))
	case "event":
		c.Event = d.eventTest(n, path, "event")
	case "opened", "clicked", "visited", "purchased", "abandoned_cart":
		c.Event = d.eventTest(n, path, kinds[0])
	case "list":
		f := d.fields(n, path, "list")
		c.List = d.str(f["list"], join(path, "list"))
	case "total_spent":
		f := d.fields(n, path, "total_spent", "within")
		c.TotalSpent = d.scoreTest(f["total_spent"], join(path, "total_spent"))
		if c.TotalSpent != nil && c.TotalSpent.Name != "" {
			d.fail(f["total_spent"], join(path, "total_spent.name"), "total_spent has no name")
		}
		if w := f["within"]; w != nil {
			c.SpentWithin = d.duration(w, join(path, "within"))
		}
	case "deal":
		f := d.fields(n, path, "deal")
		c.Deal = &DealTest{}
		if g := d.fields(f["deal"], join(path, "deal"), "pipeline", "stage", "stage_at_least", "value"); g != nil {
			d.required(g, f["deal"], join(path, "deal"), "pipeline")
			c.Deal.Pipeline = d.optStr(g["pipeline"], join(path, "deal.pipeline"))
			c.Deal.Stage = d.optStr(g["stage"], join(path, "deal.stage"))
			c.Deal.StageAtLeast = d.optStr(g["stage_at_least"], join(path, "deal.stage_at_least"))
			if g["stage"] != nil && g["stage_at_least"] != nil {
				d.fail(g["stage_at_least"], join(path, "deal.stage_at_least"), "give stage or stage_at_least, not both")
			}
			if g["value"] != nil {
				c.Deal.Value = d.scoreTest(g["value"], join(path, "deal.value"))
			}
		}
	case "open_task":
		f := d.fields(n, path, "open_task")
		if v := f["open_task"]; v.Kind != yaml.ScalarNode || v.Value != "true" {
			d.fail(v, join(path, "open_task"), "must be true (use not for no open task)")
		}
		c.OpenTask = true
	case "in_journey", "completed_journey":
		f := d.fields(n, path, kinds[0])
		id := d.str(f[kinds[0]], join(path, kinds[0]))
		if kinds[0] == "in_journey" {
			c.InJourney = id
		} else {
			c.CompletedJourney = id
		}
	case "created_within":
		f := d.fields(n, path, "created_within")
		c.CreatedWithin = d.duration(f["created_within"], join(path, "created_within"))
	case "viewed_not_purchased":
		f := d.fields(n, path, "viewed_not_purchased", "within", "product")
		c.ViewedNotPurchased = &ViewTest{}
		if v := f["viewed_not_purchased"]; v.Kind != yaml.ScalarNode || v.Value != "true" {
			d.fail(v, join(path, "viewed_not_purchased"), "must be true (narrow it with within and product)")
		}
		if w := f["within"]; w != nil {
			c.ViewedNotPurchased.Within = d.duration(w, join(path, "within"))
		}
		if v := f["product"]; v != nil {
			if c.ViewedNotPurchased.Product = d.str(v, join(path, "product")); c.ViewedNotPurchased.Product == "" && v.Kind == yaml.ScalarNode {
				d.fail(v, join(path, "product"), "needs a product_id or sku")
			}
		}
	case "object":
		c.Object = d.objectTest(n, path)
	case "goal_met":
		f := d.fields(n, path, "goal_met")
		c.GoalMet = &GoalRef{}
		if g := d.fields(f["goal_met"], join(path, "goal_met"), "journey", "goal"); g != nil {
			d.required(g, f["goal_met"], join(path, "goal_met"), "journey", "goal")
			c.GoalMet.Journey = d.optStr(g["journey"], join(path, "goal_met.journey"))
			c.GoalMet.Goal = d.optStr(g["goal"], join(path, "goal_met.goal"))
		}
	}
	return c
}

func (d *decoder) conditions(n *yaml.Node, path string) []Condition {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.fail(n, path, "must be a non-empty list of conditions")
		return []Condition{}
	}
	if d.tooMany(n, path, "conditions") {
		return []Condition{}
	}
	out := make([]Condition, len(n.Content))
	for i, s := range n.Content {
		out[i] = d.condition(s, fmt.Sprintf("%s[%d]", path, i))
	}
	return out
}

func (d *decoder) fieldTest(n *yaml.Node, path string) *FieldTest {
	f := d.fields(n, path, append([]string{"field"}, FieldOps...)...)
	t := &FieldTest{}
	if f == nil {
		return t
	}
	t.Name = d.str(f["field"], join(path, "field"))
	for _, op := range FieldOps {
		if f[op] == nil {
			continue
		}
		if t.Op != "" {
			d.fail(f[op], join(path, op), "a field test takes one operator; %s is already given", t.Op)
			return t
		}
		t.Op = op
		v, p := f[op], join(path, op)
		switch op {
		case OpEquals, OpNotEquals:
			t.Value = d.scalar(v, p)
		case OpContains, OpStartsWith:
			t.Value = d.str(v, p)
		case OpGT, OpGTE, OpLT, OpLTE:
			t.Value = d.number(v, p)
		case OpBetween:
			t.Range = d.numberPair(v, p)
		case OpIsSet, OpIsBlank, OpAnniversary:
			if v.Kind != yaml.ScalarNode || v.Value != "true" {
				d.fail(v, p, "must be true")
			}
		case OpBefore, OpAfter:
			s := d.str(v, p)
			if _, err := ParseDate(s); err != nil && s != "" {
				d.fail(v, p, "%s", err)
			}
			t.Value = s
		case OpWithinLast, OpWithinNext:
			if raw := d.str(v, p); raw != "" {
				w, err := ParseDuration(raw)
				if err != nil {
					d.fail(v, p, "%s", err)
				}
				t.Within = &w
			}
		}
	}
	if t.Op == "" {
		d.fail(n, path, "field %q needs an operator (one of %s)", t.Name, strings.Join(FieldOps, ", "))
	}
	return t
}

func (d *decoder) scoreTest(n *yaml.Node, path string) *ScoreTest {
	s := &ScoreTest{}
	f := d.fields(n, path, "name", "gte", "gt", "lte", "lt", "between")
	if f == nil {
		return s
	}
	if v := f["name"]; v != nil {
		s.Name = d.str(v, join(path, "name"))
	}
	num := func(key string) *float64 {
		if f[key] == nil {
			return nil
		}
		v := d.number(f[key], join(path, key))
		return &v
	}
	s.GTE, s.GT, s.LTE, s.LT = num("gte"), num("gt"), num("lte"), num("lt")
	if v := f["between"]; v != nil {
		if r := d.numberPair(v, join(path, "between")); len(r) == 2 {
			s.GTE, s.LTE = &r[0], &r[1]
		}
	}
	if s.GTE == nil && s.GT == nil && s.LTE == nil && s.LT == nil {
		d.fail(n, path, "needs a bound: gte, gt, lte, lt or between")
	}
	return s
}

func (d *decoder) eventTest(n *yaml.Node, path, kind string) *EventTest {
	e := &EventTest{}
	f := d.fields(n, path, kind, "within", "between", "since_entry", "where", "at_least", "at_most", "exactly")
	if f == nil {
		return e
	}
	if sc, ok := eventShortcuts[kind]; ok {
		e.Name = sc.event
		v, p := f[kind], join(path, kind)
		switch kind {
		case "abandoned_cart":
			e.From = FromCarts
			if v.Kind != yaml.ScalarNode || v.Value != "true" {
				d.fail(v, p, "must be true")
			}
		case "visited":
			e.URL = d.str(v, p)
		case "purchased":
			e.From = FromOrders
			if v.Kind == yaml.ScalarNode && v.Value != "true" {
				e.Product = d.str(v, p) // true: any purchase
			}
		default: // opened, clicked: true for any email, or a template
			if v.Kind == yaml.ScalarNode && v.Value != "true" {
				e.Where = map[string]any{sc.prop: d.str(v, p)}
			}
		}
	} else if e.Name = d.str(f["event"], join(path, "event")); e.Name == "" && f["event"].Kind == yaml.ScalarNode {
		d.fail(f["event"], join(path, "event"), "needs an event name")
	}
	if v := f["within"]; v != nil {
		if raw := d.str(v, join(path, "within")); raw != "" {
			w, err := ParseDuration(raw)
			if err != nil {
				d.fail(v, join(path, "within"), "%s", err)
			}
			e.Within = &w
		}
	}
	if v := f["between"]; v != nil {
		e.Between = d.period(v, join(path, "between"))
	}
	if v := f["since_entry"]; v != nil {
		e.SinceEntry = v.Kind == yaml.ScalarNode && v.Value == "true"
		if !e.SinceEntry && v.Value != "false" {
			d.fail(v, join(path, "since_entry"), "must be true or false")
		}
		if e.SinceEntry && d.segment {
			d.fail(v, join(path, "since_entry"), sinceEntryInSegment)
		}
	}
	if v := f["where"]; v != nil {
		e.Where, e.Keys = d.conditionWhere(v, path, e.Where)
	}
	counts := 0
	count := func(key string) *int {
		v := f[key]
		if v == nil {
			return nil
		}
		counts++
		x, err := strconv.Atoi(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil || x < 0 {
			d.fail(v, join(path, key), "must be a whole number ≥ 0, not %s", describe(v))
			return nil
		}
		return &x
	}
	e.AtLeast, e.AtMost, e.Exactly = count("at_least"), count("at_most"), count("exactly")
	if counts > 1 {
		d.fail(n, path, "give one of at_least, at_most, exactly")
	}
	return e
}

// scalar reads a string, number or boolean as its Go value.
func (d *decoder) scalar(n *yaml.Node, path string) any {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.fail(n, path, "must be a string, number or boolean, not %s", describe(n))
		return nil
	}
	switch n.Tag {
	case "!!int", "!!float":
		f, err := strconv.ParseFloat(n.Value, 64)
		if err == nil {
			return f
		}
	case "!!bool":
		return n.Value == "true"
	}
	return n.Value
}

func (d *decoder) number(n *yaml.Node, path string) float64 {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	}
	d.fail(n, path, "must be a number, not %s", describe(n))
	return 0
}

func (d *decoder) numberPair(n *yaml.Node, path string) []float64 {
	if n.Kind != yaml.SequenceNode || len(n.Content) != 2 {
		d.fail(n, path, "must be a list of two numbers, [low, high]")
		return nil
	}
	lo, hi := d.number(n.Content[0], path+"[0]"), d.number(n.Content[1], path+"[1]")
	if lo > hi {
		d.fail(n, path, "low bound %v is above high bound %v", lo, hi)
	}
	return []float64{lo, hi}
}

// period reads [from, to]: dates or RFC 3339 times, from before to; to is excluded.
func (d *decoder) period(n *yaml.Node, path string) *Period {
	if n.Kind != yaml.SequenceNode || len(n.Content) != 2 {
		d.fail(n, path, "must be a list of two dates or times, [from, to] (to excluded): [2026-01-01, 2026-02-01] is January")
		return nil
	}
	var ends [2]time.Time
	for i, v := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		s := d.str(v, p)
		if s == "" {
			if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
				d.fail(v, p, "needs a date or time")
			}
			return nil
		}
		t, err := ParseDate(s)
		if err != nil {
			d.fail(v, p, "%s", err)
			return nil
		}
		ends[i] = t
	}
	if !ends[0].Before(ends[1]) {
		d.fail(n, path, "%s is not before %s: the period is empty (its end is excluded)", n.Content[0].Value, n.Content[1].Value)
		return nil
	}
	return &Period{From: ends[0], To: ends[1]}
}

// ParseDate reads a date (2026-12-24) or a time (RFC 3339).
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (write 2026-12-24 or 2026-12-24T09:00:00Z)", s)
}
