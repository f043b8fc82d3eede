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
	b := &sqlBuilder{env: env}
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
		return "EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = " + b.arg(c.Tag) + ")", nil
	case "field":
		p, err := b.field(c.Field)
		if err != nil {
			return "", err
		}
		return "COALESCE(" + p + ", false)", nil
	case "score":
		return b.score(c.Score), nil
	case "event":
		return b.event(c.Event)
	}
	return "", fmt.Errorf("%w: empty condition", ErrCondition)
}

func (b *sqlBuilder) field(f *journey.FieldTest) (string, error) {
	key := b.arg(f.Name) + "::text"
	raw := "(c.traits -> " + key + ")"
	text := "(c.traits ->> " + key + ")"
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
		case string:
			eq = text + " = " + b.arg(v) + "::text"
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
	case journey.OpWithinLast:
		if b.env.Now.IsZero() || f.Within == nil {
			return "", fmt.Errorf("%w: field %s within_last needs a window and a clock", ErrCondition, f.Name)
		}
		return at + " BETWEEN " + b.arg(b.env.Now.Add(-f.Within.D)) + " AND " + b.arg(b.env.Now), nil
	}
	return "", fmt.Errorf("%w: field %s: unknown operator %q", ErrCondition, f.Name, f.Op)
}

func (b *sqlBuilder) score(s *journey.ScoreTest) string {
	v := "COALESCE((SELECT s.value FROM contact_scores s WHERE s.contact_id = c.id AND s.name = " + b.arg(s.Name) + "), 0)"
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
	if e.SinceEntry {
		if b.env.EnteredAt.IsZero() {
			return "", fmt.Errorf("%w: event %s since_entry only has a meaning inside a journey", ErrCondition, e.Name)
		}
		where += " AND e.occurred_at >= " + b.arg(b.env.EnteredAt)
	}
	if len(e.Where) > 0 {
		js, err := json.Marshal(e.Where)
		if err != nil {
			return "", fmt.Errorf("%w: event %s where: %v", ErrCondition, e.Name, err)
		}
		where += " AND e.properties @> " + b.arg(string(js)) + "::jsonb"
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

// SetScore sets a contact's named score (for tests and imports; scoring rules come later).
func (s *Store) SetScore(ctx context.Context, contactID int64, name string, value float64) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO contact_scores (contact_id, name, value) VALUES ($1, $2, $3)
		ON CONFLICT (contact_id, name) DO UPDATE SET value = $3, updated_at = now()`, contactID, name, value)
	if err != nil {
		return fmt.Errorf("set score: %w", err)
	}
	return nil
}
