package crm

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/cairnhq/cairn/journey"
)

// FieldDefinition types a custom contact field.
type FieldDefinition struct {
	Name  string `json:"name"`
	Type  string `json:"type"` // text, number, date, boolean
	Label string `json:"label,omitempty"`
}

// builtinFields are typed without a definition: the traits Segment and forms send.
var builtinFields = map[string]string{
	"email": "text", "first_name": "text", "last_name": "text", "name": "text", "phone": "text",
	"timezone": "text", "country": "text", "region": "text", "city": "text", "device_type": "text",
	"company": "text", "title": "text", "plan": "text", "birthday": "date", "created_at": "date",
}

// opsByType says which operators suit a field type.
var opsByType = map[string][]string{
	"text":    {journey.OpEquals, journey.OpNotEquals, journey.OpContains, journey.OpStartsWith, journey.OpIsSet, journey.OpIsBlank},
	"number":  {journey.OpEquals, journey.OpNotEquals, journey.OpGT, journey.OpGTE, journey.OpLT, journey.OpLTE, journey.OpBetween, journey.OpIsSet, journey.OpIsBlank},
	"date":    {journey.OpBefore, journey.OpAfter, journey.OpWithinLast, journey.OpAnniversary, journey.OpIsSet, journey.OpIsBlank},
	"boolean": {journey.OpEquals, journey.OpNotEquals, journey.OpIsSet, journey.OpIsBlank},
}

// PutField defines (or retypes) a custom field.
func (s *Store) PutField(ctx context.Context, f FieldDefinition) error {
	if _, ok := opsByType[f.Type]; !ok {
		return fmt.Errorf("%w: type %q is not one of text, number, date, boolean", ErrCondition, f.Type)
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO field_definitions (name, type, label) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET type = $2, label = $3`, f.Name, f.Type, f.Label)
	if err != nil {
		return fmt.Errorf("define field %s: %w", f.Name, err)
	}
	return nil
}

// Fields lists the defined custom fields.
func (s *Store) Fields(ctx context.Context) (map[string]string, error) {
	rows, err := s.Pool.Query(ctx, `SELECT name, type FROM field_definitions`)
	if err != nil {
		return nil, fmt.Errorf("read fields: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, rows.Err()
}

// CheckFields reports field tests on unknown fields, or with operators or values that do not
// suit the field's type, as problems with their paths. With no field defined at all, any
// field may be tested (types are then read from the values).
func (s *Store) CheckFields(ctx context.Context, refs []journey.FieldRef) ([]journey.Problem, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	defs, err := s.Fields(ctx)
	if err != nil || len(defs) == 0 {
		return nil, err
	}
	var probs []journey.Problem
	for _, r := range refs {
		typ, ok := defs[r.Test.Name]
		if !ok {
			typ, ok = builtinFields[r.Test.Name]
		}
		if !ok {
			known := make([]string, 0, len(defs))
			for n := range defs {
				known = append(known, n)
			}
			sort.Strings(known)
			probs = append(probs, journey.Problem{Path: r.Path + ".field", Message: fmt.Sprintf("%q is not a defined field (defined: %s)", r.Test.Name, strings.Join(known, ", "))})
			continue
		}
		allowed := opsByType[typ]
		if !contains(allowed, r.Test.Op) {
			probs = append(probs, journey.Problem{Path: r.Path + "." + r.Test.Op, Message: fmt.Sprintf("%s is a %s field: use %s", r.Test.Name, typ, strings.Join(allowed, ", "))})
			continue
		}
		if r.Test.Op == journey.OpEquals || r.Test.Op == journey.OpNotEquals {
			if msg := valueFits(typ, r.Test.Value); msg != "" {
				probs = append(probs, journey.Problem{Path: r.Path + "." + r.Test.Op, Message: fmt.Sprintf("%s is a %s field: %s", r.Test.Name, typ, msg)})
			}
		}
	}
	return probs, nil
}

func valueFits(typ string, v any) string {
	switch typ {
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Sprintf("%v is not a number", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("%v is not true or false", v)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
