package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/journey"
)

// ErrCondition marks a condition that cannot be evaluated as written (not a database fault).
var ErrCondition = errors.New("invalid condition")

// Env is what a condition is evaluated against besides the contact.
type Env struct {
	Now time.Time
	// EnteredAt is when the contact entered the journey asking; zero outside a journey.
	EnteredAt time.Time
	// Timeout bounds each statement the question runs (DefaultQueryTimeout when zero); past
	// it the answer is ErrQueryTimeout.
	Timeout time.Duration
	// Trigger holds the properties of the event that started the run asking (or, for entry
	// conditions, of the trigger itself): keyed values ({trigger: cart_id}) are read from it.
	Trigger map[string]any
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
	// sets remembers each semi-join written in many mode by its SQL, so a condition that is
	// one such test alone can be counted on its own table (see CountMatching).
	sets map[string]memberSet
	// cols are the defined fields kept in columns of their own (see PutField).
	cols map[string]fieldColumn
	// grouped says a semi-join counts rows per contact (GROUP BY … HAVING).
	grouped bool
}

// builder prepares a compiler for the condition. Questions about many contacts read the
// field columns (their indexes are the point); one contact's check reads traits, which give
// the same answers for one row without a lookup of the columns first.
func builder(ctx context.Context, db DB, cond journey.Condition, env Env, many bool) (*sqlBuilder, error) {
	b := &sqlBuilder{env: env, many: many}
	if many {
		cols, err := fieldColumns(ctx, db, cond)
		if err != nil {
			return nil, err
		}
		b.cols = cols
	}
	return b, nil
}

// memberSet is a query selecting contact_id; unique when no contact appears twice.
type memberSet struct {
	query  string
	unique bool
}

// oneRowPerContact are the tables whose member tests can match a contact at most once: their
// keys are (contact_id, the tested value).
var oneRowPerContact = map[string]bool{"contact_tags": true, "list_subscriptions": true}

// in writes "c.id IN (query)" and remembers it.
func (b *sqlBuilder) in(query string, unique bool) string {
	expr := "c.id IN (" + query + ")"
	if b.sets == nil {
		b.sets = map[string]memberSet{}
	}
	b.sets[expr] = memberSet{query, unique}
	return expr
}

// member writes "c.id IN (sub)" for many-contact questions and "EXISTS (sub correlated)" for
// one contact. sub selects contact_id from alias x; cond filters it.
func (b *sqlBuilder) member(table, alias, cond string) string {
	return b.memberOf(table, alias, cond, oneRowPerContact[table])
}

// memberOf is member for a test that may match a contact's rows more than once (unique false).
func (b *sqlBuilder) memberOf(table, alias, cond string, unique bool) string {
	if b.many {
		return b.in("SELECT "+alias+".contact_id FROM "+table+" "+alias+" WHERE "+cond, unique)
	}
	return "EXISTS (SELECT 1 FROM " + table + " " + alias + " WHERE " + alias + ".contact_id = c.id AND " + cond + ")"
}

// anyOf writes the tag tests and the list tests of an any as one member test each, with the
// names as one array (t.tag = ANY($1)), into parts, and returns the other conditions. An any
// of a thousand tags is then one subplan and one parameter, not a thousand of each that every
// contact is probed against.
func (b *sqlBuilder) anyOf(list []journey.Condition, parts *[]string) []journey.Condition {
	var tags, lists []string
	rest := make([]journey.Condition, 0, len(list))
	for _, c := range list {
		switch c.Kind() {
		case "tag":
			tags = append(tags, c.Tag)
		case "list":
			lists = append(lists, c.List)
		default:
			rest = append(rest, c)
		}
	}
	if len(tags) > 1 {
		*parts = append(*parts, b.memberOf("contact_tags", "t", "t.tag = ANY ("+b.arg(tags)+"::text[])", false))
	} else {
		for _, t := range tags {
			rest = append(rest, journey.Condition{Tag: t})
		}
	}
	if len(lists) > 1 {
		*parts = append(*parts, b.memberOf("list_subscriptions", "l", "l.list = ANY ("+b.arg(lists)+"::text[]) AND l.status = 'subscribed'", false))
	} else {
		for _, l := range lists {
			rest = append(rest, journey.Condition{List: l})
		}
	}
	return rest
}

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return fmt.Sprintf("$%d", len(b.args))
}

// Matches answers "does this contact match the condition", within env's time limit.
func Matches(ctx context.Context, db DB, contactID int64, cond journey.Condition, env Env) (bool, error) {
	var ok bool
	err := bounded(ctx, db, env.timeout(), func(tx pgx.Tx) error {
		var err error
		ok, err = matches(ctx, tx, contactID, cond, env)
		return err
	})
	return ok, err
}

func matches(ctx context.Context, db DB, contactID int64, cond journey.Condition, env Env) (bool, error) {
	b, err := builder(ctx, db, cond, env, false)
	if err != nil {
		return false, err
	}
	id := b.arg(contactID)
	where, err := b.compile(cond)
	if err != nil {
		return false, err
	}
	var ok, exists bool
	err = db.QueryRow(ctx, `SELECT COALESCE(bool_or(`+where+`), false), count(*) > 0 FROM contacts c WHERE c.id = `+id, b.args...).Scan(&ok, &exists)
	if err != nil {
		return false, fmt.Errorf("check condition: %w", err)
	}
	if !exists {
		return false, fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
	}
	return ok, nil
}

// CountMatching answers "how many contacts match the condition", within env's time limit. A
// condition that is one test on another table (a tag, "2 orders in 30 days"), or its
// negation, is counted on that table alone: every row there belongs to a contact (foreign
// keys), so joining a million contacts back would only cost time.
func CountMatching(ctx context.Context, db DB, cond journey.Condition, env Env) (int64, error) {
	var n int64
	err := bounded(ctx, db, env.timeout(), func(tx pgx.Tx) error {
		b, err := builder(ctx, tx, cond, env, true)
		if err != nil {
			return err
		}
		where, err := b.compile(cond)
		if err != nil {
			return err
		}
		query := `SELECT count(*) FROM contacts c WHERE ` + where
		set, negated, single := b.single(where)
		if single {
			members := `(SELECT count(*) FROM (` + set.query + `) m)`
			if !set.unique {
				members = `(SELECT count(DISTINCT m.contact_id) FROM (` + set.query + `) m)`
			}
			query = `SELECT ` + members
			if negated {
				query = `SELECT (SELECT count(*) FROM contacts) - ` + members
			}
		}
		if b.grouped && !single {
			// Joined with contacts under a parallel plan, PostgreSQL computes a per-contact count
			// once in every worker: on 2 cores "plan is pro and 2 orders in 30 days" took 555–625
			// ms that way and 350–360 ms without workers, and it always costs that CPU twice over.
			if _, err := tx.Exec(ctx, `SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, query, b.args...).Scan(&n); err != nil {
			return fmt.Errorf("count matching contacts: %w", err)
		}
		return nil
	})
	return n, err
}

// single reports whether the compiled condition is one member set, or its negation.
func (b *sqlBuilder) single(where string) (set memberSet, negated bool, ok bool) {
	if set, ok := b.sets[where]; ok {
		return set, false, true
	}
	for _, inner := range []string{strings.TrimPrefix(where, "NOT "), strings.TrimSuffix(strings.TrimPrefix(where, "(NOT "), ")")} {
		if set, ok := b.sets[inner]; ok && inner != where {
			return set, true, true
		}
	}
	return memberSet{}, false, false
}

// maxParams is PostgreSQL's limit on a statement's parameters; the document limits keep a
// condition well below it (journey.MaxConditionNodes), and a few are left for the query
// around the condition.
const maxParams = 65535 - 16

// pullUpLimit is how many member tests (c.id IN (...)) a many-contact condition may have
// before compile stops PostgreSQL from turning them into joins. Each IN of a top-level AND
// becomes a semi-join, and the planner then orders them all together: the first run of "all
// of N tags" took about 90 ms for 16, 260 ms for 24, 470 ms for 48 and 1.4–3.2 s for 100
// (200,000 contacts, 2 cores), and 400 took 3.5 minutes to plan on an empty database. Behind
// IS TRUE each runs as a hashed subplan instead: 50–70 ms for 16 to 48 tags on the same
// contacts, 0.5 s for 100, 0.35 s to plan 5,000 (bench/bounds).
const pullUpLimit = 16

// compile turns a condition into a boolean SQL expression over the contacts row "c" (see
// expr), ready to stand alone in a WHERE.
func (b *sqlBuilder) compile(c journey.Condition) (string, error) {
	where, err := b.expr(c)
	if err != nil {
		return "", err
	}
	if len(b.args) > maxParams {
		return "", fmt.Errorf("%w: the condition needs %d values; PostgreSQL takes %d", ErrCondition, len(b.args), maxParams)
	}
	if b.many && len(b.sets) > pullUpLimit {
		// Every leaf is two-valued, so IS TRUE changes no answer.
		return "(" + where + ") IS TRUE", nil
	}
	return where, nil
}

// expr turns a condition into a boolean SQL expression over the contacts row "c". Every leaf
// is two-valued (never NULL), so "not" means what a marketer expects: a contact without the
// field does not have plan = pro, so it matches "not plan = pro".
func (b *sqlBuilder) expr(c journey.Condition) (string, error) {
	switch c.Kind() {
	case "all", "any":
		list, sep := c.All, " AND "
		var parts []string
		if c.Kind() == "any" {
			list, sep = b.anyOf(c.Any, &parts), " OR "
		}
		for _, sub := range list {
			p, err := b.expr(sub)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		if len(parts) == 1 {
			return parts[0], nil // so that an any of tags alone is still one member set
		}
		return "(" + strings.Join(parts, sep) + ")", nil
	case "not":
		p, err := b.expr(*c.Not)
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
	case "object":
		return b.object(c.Object)
	case "deal":
		q := "d.status = 'open' AND d.pipeline = " + b.arg(c.Deal.Pipeline) + "::text"
		if c.Deal.Stage != "" {
			q += " AND d.stage = " + b.arg(c.Deal.Stage) + "::text"
		}
		if c.Deal.StageAtLeast != "" {
			// By the pipeline's order; a stage the pipeline does not have matches nothing.
			q += " AND (SELECT position FROM stages WHERE pipeline_id = d.pipeline AND id = d.stage) >= " +
				"(SELECT position FROM stages WHERE pipeline_id = d.pipeline AND id = " + b.arg(c.Deal.StageAtLeast) + "::text)"
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

// Field tests follow one set of rules, whichever of traits, a profile column or a field
// column a test reads:
//   - a field's text is its string, or its number as written, without surrounding spaces; a
//     field whose text is empty, or that is true, false, a list or an object, has none;
//   - text tests (equals or not_equals with a string, contains, starts_with) ignore case, and
//     equals ignores spaces around the value asked for too;
//   - a field's number is its number, or a numeric string ("42", " 7.5 "), at most 100
//     characters; tests with a number compare it numerically;
//   - a test on a field the contact does not have, or has no value of the test's kind in,
//     does not hold: not_equals included;
//   - is_set holds for a field holding anything but blank text (text, a number, a boolean, a
//     list, an object), is_blank for the others.

// field writes a two-valued field test.
func (b *sqlBuilder) field(f *journey.FieldTest) (string, error) {
	col, isProfile := profileColumns[f.Name]
	if fc, ok := b.cols[f.Name]; ok && !isProfile {
		if p, ok := b.fieldColumn(f, fc); ok {
			return p, nil
		}
	}
	var raw, text string
	if isProfile {
		// A profile column holds the text already (cairn_text or a trimmed observation).
		raw, text = "to_jsonb("+col+")", col
	} else {
		key := b.arg(f.Name) + "::text"
		raw = "(c.traits -> " + key + ")"
		text = "cairn_text" + raw
	}
	if v, ok := f.Value.(string); ok && isProfile && f.Op == journey.OpEquals {
		// The contacts_country index is on this prefix; the column is then compared in full.
		want := "lower(btrim(" + b.arg(v) + "::text))"
		return fmt.Sprintf("(%[1]s IS NOT NULL AND left(lower(%[1]s), %[2]d) = left(%[3]s, %[2]d) AND lower(%[1]s) = %[3]s)", col, fieldKeyChars, want), nil
	}
	return b.valueTest(f, raw, text)
}

// valueTest writes a two-valued test of a JSON value (raw) with its text, by the field-test
// rules: a contact's trait, or a field of a custom object record.
func (b *sqlBuilder) valueTest(f *journey.FieldTest, raw, text string) (string, error) {
	if v, ok := f.Value.(string); ok && (f.Op == journey.OpEquals || f.Op == journey.OpNotEquals) {
		want := "lower(btrim(" + b.arg(v) + "::text))"
		if f.Op == journey.OpNotEquals {
			return "(" + text + " IS NOT NULL AND lower(" + text + ") <> " + want + ")", nil
		}
		return "(" + text + " IS NOT NULL AND lower(" + text + ") = " + want + ")", nil
	}
	p, err := b.fieldValue(f, raw, text)
	if err != nil {
		return "", err
	}
	return "COALESCE(" + p + ", false)", nil
}

// shortKey says whether a value asked for fits a field column's text key whole once
// lower-cased: lower-casing can lengthen a string (İ is i and a combining dot), never
// threefold.
func shortKey(v string) bool {
	return utf8.RuneCountInString(v) <= fieldKeyChars/3
}

// fieldColumn writes the tests a defined field's columns serve, with the same answers as the
// traits expressions (the columns are generated from them), bare so that the (column, score)
// indexes can serve them. The text key holds the first fieldKeyChars characters, so equality
// with a longer value also reads traits.
func (b *sqlBuilder) fieldColumn(f *journey.FieldTest, fc fieldColumn) (string, bool) {
	tc, nc := "c."+pgx.Identifier{fc.text}.Sanitize(), "c."+pgx.Identifier{fc.number}.Sanitize()
	switch v := f.Value.(type) {
	case string:
		if fc.text == "" || f.Op != journey.OpEquals && (f.Op != journey.OpNotEquals || !shortKey(v)) {
			return "", false // (a value is written only for a test written here)
		}
		want := "lower(btrim(" + b.arg(v) + "::text))"
		switch {
		case f.Op == journey.OpNotEquals:
			return "(" + tc + " IS NOT NULL AND " + tc + " <> " + want + ")", true
		case shortKey(v):
			return "(" + tc + " IS NOT NULL AND " + tc + " = " + want + ")", true
		}
		return fmt.Sprintf("(%[1]s IS NOT NULL AND %[1]s = left(%[2]s, %[3]d) AND lower(cairn_text(c.traits -> %[4]s::text)) = %[2]s)", tc, want, fieldKeyChars, b.arg(f.Name)), true
	case float64:
		if fc.number == "" {
			return "", false
		}
		op, ok := map[string]string{journey.OpEquals: "=", journey.OpNotEquals: "<>", journey.OpGT: ">", journey.OpGTE: ">=", journey.OpLT: "<", journey.OpLTE: "<="}[f.Op]
		if !ok {
			return "", false
		}
		return "(" + nc + " IS NOT NULL AND " + nc + " " + op + " " + b.arg(v) + ")", true
	}
	switch {
	case f.Op == journey.OpBetween && fc.number != "" && len(f.Range) == 2:
		return "(" + nc + " IS NOT NULL AND " + nc + " BETWEEN " + b.arg(f.Range[0]) + " AND " + b.arg(f.Range[1]) + ")", true
	}
	return "", false
}

// fieldValue writes every other field test over the field's JSON value (raw) and its text; it
// may be NULL for a missing field.
func (b *sqlBuilder) fieldValue(f *journey.FieldTest, raw, text string) (string, error) {
	num := "cairn_number(" + raw + ")"
	at := "cairn_time(" + raw + ")"
	switch f.Op {
	case journey.OpEquals, journey.OpNotEquals:
		op := map[string]string{journey.OpEquals: " = ", journey.OpNotEquals: " <> "}[f.Op]
		switch v := f.Value.(type) {
		case float64:
			return num + op + b.arg(v), nil
		case bool:
			return "jsonb_typeof(" + raw + ") = 'boolean' AND " + raw + op + b.arg(fmt.Sprint(v)) + "::jsonb", nil
		}
		return "", fmt.Errorf("%w: field %s: cannot compare with %v", ErrCondition, f.Name, f.Value)
	case journey.OpContains:
		return "strpos(lower(" + text + "), lower(" + b.arg(f.Value) + "::text)) > 0", nil
	case journey.OpStartsWith:
		return "starts_with(lower(" + text + "), lower(" + b.arg(f.Value) + "::text))", nil
	case journey.OpGT, journey.OpGTE, journey.OpLT, journey.OpLTE:
		op := map[string]string{journey.OpGT: ">", journey.OpGTE: ">=", journey.OpLT: "<", journey.OpLTE: "<="}[f.Op]
		return num + " " + op + " " + b.arg(f.Value), nil
	case journey.OpBetween:
		return num + " BETWEEN " + b.arg(f.Range[0]) + " AND " + b.arg(f.Range[1]), nil
	case journey.OpIsSet, journey.OpIsBlank:
		set := "(" + text + " IS NOT NULL OR jsonb_typeof(" + raw + ") IN ('boolean', 'array', 'object'))"
		if f.Op == journey.OpIsBlank {
			return "NOT COALESCE(" + set + ", false)", nil
		}
		return set, nil
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
	case journey.OpWithinNext:
		if b.env.Now.IsZero() || f.Within == nil {
			return "", fmt.Errorf("%w: field %s within_next needs a window and a clock", ErrCondition, f.Name)
		}
		return at + " BETWEEN " + b.arg(b.env.Now) + " AND " + b.arg(b.env.Now.Add(f.Within.D)), nil
	}
	return "", fmt.Errorf("%w: field %s: unknown operator %q", ErrCondition, f.Name, f.Op)
}

// score reads a named score from the contact's row (a missing score is 0): the same
// expression serves one contact and many, with no second table to join. The default score
// has its own column.
func (b *sqlBuilder) score(s *journey.ScoreTest) string {
	if s.Name == "" {
		return b.bounds("c.score", s)
	}
	return b.bounds("COALESCE((c.scores -> "+b.arg(s.Name)+"::text)::numeric, 0)", s)
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

// window writes the time limits an event-like test puts on col: the last N (within), a fixed
// period (between, end excluded) and since the contact entered the journey.
func (b *sqlBuilder) window(col, what string, within *journey.Duration, between *journey.Period, sinceEntry bool) (string, error) {
	out := ""
	if within != nil {
		if b.env.Now.IsZero() {
			return "", fmt.Errorf("%w: %s within needs a clock", ErrCondition, what)
		}
		out += " AND " + col + " >= " + b.arg(b.env.Now.Add(-within.D))
	}
	if between != nil {
		out += " AND " + col + " >= " + b.arg(between.From) + " AND " + col + " < " + b.arg(between.To)
	}
	if sinceEntry {
		if b.env.EnteredAt.IsZero() {
			return "", fmt.Errorf("%w: %s since_entry only has a meaning inside a journey", ErrCondition, what)
		}
		out += " AND " + col + " >= " + b.arg(b.env.EnteredAt)
	}
	return out, nil
}

// containment writes "col @> where" for a test's where, or nothing.
func (b *sqlBuilder) containment(col, what string, where map[string]any) (string, error) {
	if len(where) == 0 {
		return "", nil
	}
	js, err := json.Marshal(where)
	if err != nil {
		return "", fmt.Errorf("%w: %s where: %v", ErrCondition, what, err)
	}
	return " AND " + col + " @> " + b.arg(string(js)) + "::jsonb", nil
}

// counted writes how many rows of table (alias x, filtered by cond, which must not mention
// the contact) the contact has, against the test's at_least / at_most / exactly: "at least
// once" without a count. Both modes give the same answers; many-contact questions group once.
func (b *sqlBuilder) counted(table, x, cond string, e *journey.EventTest) string {
	if b.many {
		rows := "SELECT " + x + ".contact_id FROM " + table + " " + x + " WHERE " + cond
		having := func(op string, n int) string {
			b.grouped = true
			return b.in(rows+" GROUP BY "+x+".contact_id HAVING count(*) "+op+" "+b.arg(n), true)
		}
		switch {
		case e.AtMost != nil:
			return "NOT " + having(">", *e.AtMost)
		case e.Exactly != nil && *e.Exactly == 0:
			return "NOT " + b.in(rows, false)
		case e.Exactly != nil:
			return having("=", *e.Exactly)
		case e.AtLeast != nil && *e.AtLeast > 1:
			return having(">=", *e.AtLeast)
		case e.AtLeast != nil && *e.AtLeast == 0:
			// Always true; written over the rows so that their parameters are used (PostgreSQL
			// refuses a parameter whose type nothing gives).
			return "(" + b.in(rows, false) + " OR true)"
		}
		return b.in(rows, false)
	}
	mine := x + ".contact_id = c.id AND " + cond
	count := "(SELECT count(*) FROM " + table + " " + x + " WHERE " + mine + ")"
	switch {
	case e.AtMost != nil:
		return count + " <= " + b.arg(*e.AtMost)
	case e.Exactly != nil:
		return count + " = " + b.arg(*e.Exactly)
	case e.AtLeast != nil && *e.AtLeast > 1:
		return count + " >= " + b.arg(*e.AtLeast)
	case e.AtLeast != nil && *e.AtLeast == 0:
		return "(EXISTS (SELECT 1 FROM " + table + " " + x + " WHERE " + mine + ") OR true)"
	}
	return "EXISTS (SELECT 1 FROM " + table + " " + x + " WHERE " + mine + ")"
}

func (b *sqlBuilder) event(e *journey.EventTest) (string, error) {
	win, err := b.window("e.occurred_at", "event "+e.Name, e.Within, e.Between, e.SinceEntry)
	if err != nil {
		return "", err
	}
	where, err := b.eventWhere("e.properties", "event "+e.Name, e)
	if err != nil {
		return "", err
	}
	cond := "e.name = " + b.arg(e.Name) + win
	if e.URL != "" {
		like := b.arg(globLike(e.URL))
		cond += " AND (e.properties ->> 'path' LIKE " + like + " OR e.properties ->> 'url' LIKE " + like + ")"
	}
	if e.Product != "" {
		bySKU, _ := json.Marshal([]map[string]string{{"sku": e.Product}})
		byID, _ := json.Marshal([]map[string]string{{"product_id": e.Product}})
		cond += " AND (e.properties -> 'products' @> " + b.arg(string(bySKU)) + "::jsonb OR e.properties -> 'products' @> " + b.arg(string(byID)) + "::jsonb)"
	}
	return b.counted("events", "e", cond+where, e), nil
}

// SetScore sets a contact's named score (for tests and imports; journeys and scoring rules
// adjust scores with a recorded reason).
func SetScore(ctx context.Context, db DB, contactID int64, name string, value float64) error {
	ct, err := db.Exec(ctx, `UPDATE contacts SET scores = jsonb_set(scores, ARRAY[$2::text], to_jsonb($3::numeric)) WHERE id = $1`, contactID, name, value)
	if err != nil {
		return fmt.Errorf("set score: %w", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
	}
	return nil
}

// globLike turns a URL glob (* any run, ? one character) into a LIKE pattern, escaping
// LIKE's own wildcards.
func globLike(glob string) string {
	r := strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`, "*", "%", "?", "_")
	return r.Replace(glob)
}
