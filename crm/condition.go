package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairnhq/cairn/journey"
)

// ErrCondition marks a condition that cannot be evaluated as written (not a database fault).
var ErrCondition = errors.New("invalid condition")

// Env is what a condition is evaluated against besides the contact.
type Env struct {
	Now time.Time
	// EnteredAt is when the contact entered the journey asking; zero outside a journey.
	EnteredAt time.Time
}

// sqlBuilder collects parameters: values are always passed as parameters, never spliced
// into the SQL text.
type sqlBuilder struct {
	args []any
	env  Env
	// many compiles for "which contacts" questions: tests on other tables become semi-joins
	// (c.id IN (SELECT contact_id ...)) that PostgreSQL can hash once, instead of one probe
	// per contact, which is what a single-contact check wants.
	many bool
}

// member writes "c.id IN (sub)" for many-contact questions and "EXISTS (sub correlated)" for
// one contact. sub selects contact_id from alias x; cond filters it.
func (b *sqlBuilder) member(table, alias, cond string) string {
	if b.many {
		return "c.id IN (SELECT " + alias + ".contact_id FROM " + table + " " + alias + " WHERE " + cond + ")"
	}
	return "EXISTS (SELECT 1 FROM " + table + " " + alias + " WHERE " + alias + ".contact_id = c.id AND " + cond + ")"
}

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return fmt.Sprintf("$%d", len(b.args))
}

// Matches answers "does this contact match the condition".
func (s *Store) Matches(ctx context.Context, contactID int64, cond journey.Condition, env Env) (bool, error) {
	b := &sqlBuilder{env: env}
	id := b.arg(contactID)
	where, err := b.compile(cond)
	if err != nil {
		return false, err
	}
	var ok, exists bool
	err = s.Pool.QueryRow(ctx, `SELECT COALESCE(bool_or(`+where+`), false), count(*) > 0 FROM contacts c WHERE c.id = `+id, b.args...).Scan(&ok, &exists)
	if err != nil {
		return false, fmt.Errorf("check condition: %w", err)
	}
	if !exists {
		return false, fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
	}
	return ok, nil
}

// CountMatching answers "how many contacts match the condition".
func (s *Store) CountMatching(ctx context.Context, cond journey.Condition, env Env) (int64, error) {
	b := &sqlBuilder{env: env, many: true}
	where, err := b.compile(cond)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM contacts c WHERE `+where, b.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count matching contacts: %w", err)
	}
	return n, nil
}

// compile turns a condition into a boolean SQL expression over the contacts row "c". Every
// leaf is two-valued (never NULL), so "not" means what a marketer expects: a contact without
// the field does not have plan = pro, so it matches "not plan = pro".
func (b *sqlBuilder) compile(c journey.Condition) (string, error) {
	switch c.Kind() {
	case "all", "any":
		list, sep := c.All, " AND "
		if c.Kind() == "any" {
			list, sep = c.Any, " OR "
		}
		parts := make([]string, len(list))
		for i, sub := range list {
			p, err := b.compile(sub)
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return "(" + strings.Join(parts, sep) + ")", nil
	case "not":
		p, err := b.compile(*c.Not)
		if err != nil {
			return "", err
		}
		return "(NOT " + p + ")", nil
	case "tag":
		return b.member("contact_tags", "t", "t.tag = "+b.arg(c.Tag)+"::text"), nil
	case "field":
		return b.field(c.Field)
	case "score":
		return b.score(c.Score), nil
	case "event":
		switch c.Event.From {
		case journey.FromOrders:
			return b.purchased(c.Event)
		case journey.FromCarts:
			return b.abandonedCart(c.Event)
		}
		return b.event(c.Event)
	case "list":
		return b.member("list_subscriptions", "l", "l.list = "+b.arg(c.List)+"::text AND l.status = 'subscribed'"), nil
	case "total_spent":
		return b.totalSpent(c.TotalSpent, c.SpentWithin)
	case "viewed_not_purchased":
		return b.viewedNotPurchased(c.ViewedNotPurchased)
	case "deal":
		q := "d.status = 'open' AND d.pipeline = " + b.arg(c.Deal.Pipeline) + "::text"
		if c.Deal.Stage != "" {
			q += " AND d.stage = " + b.arg(c.Deal.Stage) + "::text"
		}
		if c.Deal.Value != nil {
			q += " AND " + b.bounds("d.value", c.Deal.Value)
		}
		return b.member("deals", "d", q), nil
	case "open_task":
		return b.member("tasks", "t", "t.done_at IS NULL"), nil
	case "in_journey":
		return b.member("enrollments", "en", "en.journey_id = "+b.arg(c.InJourney)+"::text AND en.ended_at IS NULL"), nil
	case "completed_journey":
		return b.member("enrollments", "en", "en.journey_id = "+b.arg(c.CompletedJourney)+"::text AND en.ended_at IS NOT NULL"), nil
	case "goal_met":
		return b.member("goal_completions", "g", "g.journey_id = "+b.arg(c.GoalMet.Journey)+"::text AND g.goal_id = "+b.arg(c.GoalMet.Goal)+"::text"), nil
	case "created_within":
		if b.env.Now.IsZero() {
			return "", fmt.Errorf("%w: created_within needs a clock", ErrCondition)
		}
		return "c.created_at >= " + b.arg(b.env.Now.Add(-c.CreatedWithin.D)), nil
	}
	return "", fmt.Errorf("%w: empty condition", ErrCondition)
}

// profileColumns are the built-in fields kept as contact columns (migration 014); a test on
// one reads its column. The column name written into SQL comes from this list, never from
// the condition.
var profileColumns = map[string]string{
	"phone": "c.phone", "first_name": "c.first_name", "last_name": "c.last_name", "timezone": "c.timezone",
	"country": "c.country", "region": "c.region", "city": "c.city", "device_type": "c.device_type",
}

// field writes a two-valued field test. Equality with a string is written so that it is never
// NULL without a COALESCE around it, which would hide it from the indexes that serve it.
func (b *sqlBuilder) field(f *journey.FieldTest) (string, error) {
	col, isColumn := profileColumns[f.Name]
	if v, ok := f.Value.(string); ok && (f.Op == journey.OpEquals || f.Op == journey.OpNotEquals) {
		var eq string
		if isColumn {
			// Case does not matter for a place or a device (pt, PT); the contacts_country
			// index is on lower(country) for this.
			eq = "(" + col + " IS NOT NULL AND lower(" + col + ") = lower(" + b.arg(v) + "::text))"
		} else {
			// Containment: the same answer as ->> for a string, and the traits GIN index serves it.
			js, _ := json.Marshal(map[string]string{f.Name: v})
			eq = "c.traits @> " + b.arg(string(js)) + "::jsonb"
		}
		if f.Op == journey.OpNotEquals {
			return "NOT " + eq, nil
		}
		return eq, nil
	}
	p, err := b.fieldValue(f, col, isColumn)
	if err != nil {
		return "", err
	}
	return "COALESCE(" + p + ", false)", nil
}

// fieldValue writes every other field test; it may be NULL for a missing field.
func (b *sqlBuilder) fieldValue(f *journey.FieldTest, col string, isColumn bool) (string, error) {
	var raw, text string
	if isColumn {
		raw, text = "(to_jsonb("+col+"))", col
	} else {
		key := b.arg(f.Name) + "::text"
		raw, text = "(c.traits -> "+key+")", "(c.traits ->> "+key+")"
	}
	num := "cairn_num" + raw
	at := "cairn_time" + raw
	switch f.Op {
	case journey.OpEquals, journey.OpNotEquals:
		var eq string
		switch v := f.Value.(type) {
		case float64:
			eq = num + " = " + b.arg(v)
		case bool:
			eq = raw + " = " + b.arg(fmt.Sprint(v)) + "::jsonb"
		default:
			return "", fmt.Errorf("%w: field %s: cannot compare with %v", ErrCondition, f.Name, f.Value)
		}
		if f.Op == journey.OpNotEquals {
			return "NOT COALESCE(" + eq + ", false)", nil
		}
		return eq, nil
	case journey.OpContains:
		return "strpos(lower(" + text + "), lower(" + b.arg(f.Value) + "::text)) > 0", nil
	case journey.OpStartsWith:
		return "starts_with(lower(" + text + "), lower(" + b.arg(f.Value) + "::text))", nil
	case journey.OpGT, journey.OpGTE, journey.OpLT, journey.OpLTE:
		op := map[string]string{journey.OpGT: ">", journey.OpGTE: ">=", journey.OpLT: "<", journey.OpLTE: "<="}[f.Op]
		return num + " " + op + " " + b.arg(f.Value), nil
	case journey.OpBetween:
		return num + " BETWEEN " + b.arg(f.Range[0]) + " AND " + b.arg(f.Range[1]), nil
	case journey.OpIsSet:
		return "COALESCE(" + text + ", '') <> ''", nil
	case journey.OpIsBlank:
		return "COALESCE(" + text + ", '') = ''", nil
	case journey.OpBefore, journey.OpAfter:
		t, err := journey.ParseDate(fmt.Sprint(f.Value))
		if err != nil {
			return "", fmt.Errorf("%w: field %s: %v", ErrCondition, f.Name, err)
		}
		op := "<"
		if f.Op == journey.OpAfter {
			op = ">"
		}
		return at + " " + op + " " + b.arg(t), nil
	case journey.OpAnniversary:
		if b.env.Now.IsZero() {
			return "", fmt.Errorf("%w: field %s anniversary needs a clock", ErrCondition, f.Name)
		}
		return "to_char(" + at + "::date, 'MM-DD') = " + b.arg(b.env.Now.UTC().Format("01-02")) + "::text", nil
	case journey.OpWithinLast:
		if b.env.Now.IsZero() || f.Within == nil {
			return "", fmt.Errorf("%w: field %s within_last needs a window and a clock", ErrCondition, f.Name)
		}
		return at + " BETWEEN " + b.arg(b.env.Now.Add(-f.Within.D)) + " AND " + b.arg(b.env.Now), nil
	}
	return "", fmt.Errorf("%w: field %s: unknown operator %q", ErrCondition, f.Name, f.Op)
}

func (b *sqlBuilder) score(s *journey.ScoreTest) string {
	if !b.many {
		v := "COALESCE((SELECT s.value FROM contact_scores s WHERE s.contact_id = c.id AND s.name = " + b.arg(s.Name) + "::text), 0)"
		return b.bounds(v, s)
	}
	name := b.arg(s.Name) + "::text"
	in := b.member("contact_scores", "s", "s.name = "+name+" AND "+b.bounds("s.value", s))
	zero := 0.0
	if (s.GTE == nil || zero >= *s.GTE) && (s.GT == nil || zero > *s.GT) && (s.LTE == nil || zero <= *s.LTE) && (s.LT == nil || zero < *s.LT) {
		// A contact without a score has 0, which this range includes.
		return "(" + in + " OR NOT " + b.member("contact_scores", "s", "s.name = "+name) + ")"
	}
	return in
}

// bounds compares a numeric SQL expression with a test's gte/gt/lte/lt.
func (b *sqlBuilder) bounds(v string, s *journey.ScoreTest) string {
	var parts []string
	for _, p := range []struct {
		op string
		v  *float64
	}{{">=", s.GTE}, {">", s.GT}, {"<=", s.LTE}, {"<", s.LT}} {
		if p.v != nil {
			parts = append(parts, v+" "+p.op+" "+b.arg(*p.v))
		}
	}
	return "(" + strings.Join(parts, " AND ") + ")"
}

func (b *sqlBuilder) event(e *journey.EventTest) (string, error) {
	where := "e.contact_id = c.id AND e.name = " + b.arg(e.Name)
	if e.Within != nil {
		if b.env.Now.IsZero() {
			return "", fmt.Errorf("%w: event %s within needs a clock", ErrCondition, e.Name)
		}
		where += " AND e.occurred_at >= " + b.arg(b.env.Now.Add(-e.Within.D))
	}
	if e.Between != nil {
		where += " AND e.occurred_at >= " + b.arg(e.Between.From) + " AND e.occurred_at < " + b.arg(e.Between.To)
	}
	if e.SinceEntry {
		if b.env.EnteredAt.IsZero() {
			return "", fmt.Errorf("%w: event %s since_entry only has a meaning inside a journey", ErrCondition, e.Name)
		}
		where += " AND e.occurred_at >= " + b.arg(b.env.EnteredAt)
	}
	if e.URL != "" {
		like := b.arg(globLike(e.URL))
		where += " AND (e.properties ->> 'path' LIKE " + like + " OR e.properties ->> 'url' LIKE " + like + ")"
	}
	if e.Product != "" {
		bySKU, _ := json.Marshal([]map[string]string{{"sku": e.Product}})
		byID, _ := json.Marshal([]map[string]string{{"product_id": e.Product}})
		where += " AND (e.properties -> 'products' @> " + b.arg(string(bySKU)) + "::jsonb OR e.properties -> 'products' @> " + b.arg(string(byID)) + "::jsonb)"
	}
	if len(e.Where) > 0 {
		js, err := json.Marshal(e.Where)
		if err != nil {
			return "", fmt.Errorf("%w: event %s where: %v", ErrCondition, e.Name, err)
		}
		where += " AND e.properties @> " + b.arg(string(js)) + "::jsonb"
	}
	if b.many {
		return b.eventMany(e, where), nil
	}
	count := "(SELECT count(*) FROM events e WHERE " + where + ")"
	switch {
	case e.AtMost != nil:
		return count + " <= " + b.arg(*e.AtMost), nil
	case e.Exactly != nil:
		return count + " = " + b.arg(*e.Exactly), nil
	case e.AtLeast != nil && *e.AtLeast > 1:
		return count + " >= " + b.arg(*e.AtLeast), nil
	case e.AtLeast != nil && *e.AtLeast == 0:
		return "true", nil
	}
	return "EXISTS (SELECT 1 FROM events e WHERE " + where + ")", nil
}

// eventMany writes an event test as semi-joins over the events that pass its filters, grouped
// by contact once, for "which contacts" questions.
func (b *sqlBuilder) eventMany(e *journey.EventTest, where string) string {
	where = strings.Replace(where, "e.contact_id = c.id AND ", "", 1)
	having := func(op string, n int) string {
		return "c.id IN (SELECT e.contact_id FROM events e WHERE " + where + " GROUP BY e.contact_id HAVING count(*) " + op + " " + b.arg(n) + ")"
	}
	switch {
	case e.AtMost != nil:
		return "NOT " + having(">", *e.AtMost)
	case e.Exactly != nil && *e.Exactly == 0:
		return "NOT c.id IN (SELECT e.contact_id FROM events e WHERE " + where + ")"
	case e.Exactly != nil:
		return having("=", *e.Exactly)
	case e.AtLeast != nil && *e.AtLeast > 1:
		return having(">=", *e.AtLeast)
	case e.AtLeast != nil && *e.AtLeast == 0:
		return "true"
	}
	return "c.id IN (SELECT e.contact_id FROM events e WHERE " + where + ")"
}

// SetScore sets a contact's named score (for tests and imports; scoring rules come later).
func (s *Store) SetScore(ctx context.Context, contactID int64, name string, value float64) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO contact_scores (contact_id, name, value) VALUES ($1, $2, $3)
		ON CONFLICT (contact_id, name) DO UPDATE SET value = $3, updated_at = now()`, contactID, name, value)
	if err != nil {
		return fmt.Errorf("set score: %w", err)
	}
	return nil
}

// globLike turns a URL glob (* any run, ? one character) into a LIKE pattern, escaping
// LIKE's own wildcards.
func globLike(glob string) string {
	r := strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`, "*", "%", "?", "_")
	return r.Replace(glob)
}
