package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
	if b.many {
		return b.in("SELECT "+alias+".contact_id FROM "+table+" "+alias+" WHERE "+cond, oneRowPerContact[table])
	}
	return "EXISTS (SELECT 1 FROM " + table + " " + alias + " WHERE " + alias + ".contact_id = c.id AND " + cond + ")"
}

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return fmt.Sprintf("$%d", len(b.args))
}

// Matches answers "does this contact match the condition".
func Matches(ctx context.Context, db DB, contactID int64, cond journey.Condition, env Env) (bool, error) {
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

// CountMatching answers "how many contacts match the condition". A condition that is one
// test on another table (a tag, "2 orders in 30 days"), or its negation, is counted on that
// table alone: every row there belongs to a contact (foreign keys), so joining a million
// contacts back would only cost time.
func CountMatching(ctx context.Context, db DB, cond journey.Condition, env Env) (int64, error) {
	b, err := builder(ctx, db, cond, env, true)
	if err != nil {
		return 0, err
	}
	where, err := b.compile(cond)
	if err != nil {
		return 0, err
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
	var n int64
	if b.grouped && !single {
		// Joined with contacts under a parallel plan, PostgreSQL computes a per-contact count
		// once in every worker: on 2 cores "plan is pro and 2 orders in 30 days" took 555–625
		// ms that way and 350–360 ms without workers, and it always costs that CPU twice over.
		err = WithTx(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
				return err
			}
			return tx.QueryRow(ctx, query, b.args...).Scan(&n)
		})
	} else {
		err = db.QueryRow(ctx, query, b.args...).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("count matching contacts: %w", err)
	}
	return n, nil
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

// field writes a two-valued field test. Equality with a string is written so that it is never
// NULL without a COALESCE around it, which would hide it from the indexes that serve it.
func (b *sqlBuilder) field(f *journey.FieldTest) (string, error) {
	col, isColumn := profileColumns[f.Name]
	if fc, ok := b.cols[f.Name]; ok && !isColumn {
		if p, ok := b.fieldColumn(f, fc); ok {
			return p, nil
		}
	}
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

// fieldColumn writes the tests a defined field's column serves, with the same answers as the
// traits expressions below (the column is generated from them), bare so that its (column,
// score) index can serve them.
func (b *sqlBuilder) fieldColumn(f *journey.FieldTest, fc fieldColumn) (string, bool) {
	col := "c." + pgx.Identifier{fc.column}.Sanitize()
	notNull := "(" + col + " IS NOT NULL AND "
	switch v := f.Value.(type) {
	case string:
		if fc.typ != "text" {
			return "", false
		}
		switch f.Op {
		case journey.OpEquals:
			return notNull + col + " = " + b.arg(v) + "::text)", true
		case journey.OpNotEquals:
			return col + " IS DISTINCT FROM " + b.arg(v) + "::text", true
		}
		return "", false
	case float64:
		if fc.typ != "number" {
			return "", false
		}
		switch f.Op {
		case journey.OpEquals:
			return notNull + col + " = " + b.arg(v) + ")", true
		case journey.OpNotEquals:
			return col + " IS DISTINCT FROM " + b.arg(v) + "::numeric", true
		case journey.OpGT, journey.OpGTE, journey.OpLT, journey.OpLTE:
			op := map[string]string{journey.OpGT: ">", journey.OpGTE: ">=", journey.OpLT: "<", journey.OpLTE: "<="}[f.Op]
			return notNull + col + " " + op + " " + b.arg(v) + ")", true
		}
		return "", false
	}
	if f.Op == journey.OpBetween && fc.typ == "number" && len(f.Range) == 2 {
		return notNull + col + " BETWEEN " + b.arg(f.Range[0]) + " AND " + b.arg(f.Range[1]) + ")", true
	}
	return "", false
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
			return "true"
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
		return "true"
	}
	return "EXISTS (SELECT 1 FROM " + table + " " + x + " WHERE " + mine + ")"
}

func (b *sqlBuilder) event(e *journey.EventTest) (string, error) {
	win, err := b.window("e.occurred_at", "event "+e.Name, e.Within, e.Between, e.SinceEntry)
	if err != nil {
		return "", err
	}
	where, err := b.containment("e.properties", "event "+e.Name, e.Where)
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
