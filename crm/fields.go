package crm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

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
	"date":    {journey.OpBefore, journey.OpAfter, journey.OpWithinLast, journey.OpWithinNext, journey.OpAnniversary, journey.OpIsSet, journey.OpIsBlank},
	"boolean": {journey.OpEquals, journey.OpNotEquals, journey.OpIsSet, journey.OpIsBlank},
}

// PutField defines (or retypes) a custom field. A text or number field also gets a generated
// column and a (column, score) index (see fieldColumnKinds) the first time it has that type, so
// defining one rewrites the contacts table once: about 5 s for a million contacts on 2 cores
// (bench/segments), during which reads and writes of contacts wait. A field keeps the columns
// of the types it has had, so retyping it back and forth changes no table: PostgreSQL never
// gives back a dropped column's slot (of 1,600 per table), and trading columns at each retype
// used them all up. Once the table is short of slots (columnReserve), a field gets no column
// and its tests read traits, with the same answers. If the table cannot be locked within
// lock_timeout (another long transaction holds it), nothing changes and the error says so.
func PutField(ctx context.Context, db DB, f FieldDefinition) error {
	if _, ok := opsByType[f.Type]; !ok {
		return fmt.Errorf("%w: type %q is not one of text, number, date, boolean", ErrCondition, f.Type)
	}
	rewritten := false
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		// Adding a column locks contacts for everyone: wait for that lock only so long, rather
		// than queue every reader and writer behind a long transaction.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
			return err
		}
		var cols [2]*string // text, number
		err := tx.QueryRow(ctx, `SELECT text_column, number_column FROM field_definitions WHERE name = $1 FOR UPDATE`, f.Name).Scan(&cols[0], &cols[1])
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read field %s: %w", f.Name, err)
		}
		kind, kept := fieldColumnKinds[f.Type]
		if _, builtin := profileColumns[f.Name]; kept && !builtin && cols[kind.slot] == nil {
			room, err := columnRoom(ctx, tx)
			if err != nil {
				return err
			}
			if room {
				name := fieldColumnName(f.Name) + kind.suffix
				if err := addFieldColumn(ctx, tx, name, f); err != nil {
					return err
				}
				cols[kind.slot] = &name
				rewritten = true
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO field_definitions (name, type, label, text_column, number_column) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (name) DO UPDATE SET type = $2, label = $3, text_column = $4, number_column = $5`, f.Name, f.Type, f.Label, cols[0], cols[1])
		if err != nil {
			return fmt.Errorf("define field %s: %w", f.Name, err)
		}
		return nil
	})
	if err != nil || !rewritten {
		return err
	}
	// The rewrite left the table without a visibility map (index-only scans read the table
	// again) and the new column without statistics; nothing would vacuum it soon, so do it now.
	if _, err := db.Exec(ctx, `VACUUM (ANALYZE) contacts`); err != nil {
		return fmt.Errorf("field %s is defined, but vacuuming contacts afterwards failed (segments on it read the table until autovacuum runs): %w", f.Name, err)
	}
	return nil
}

// columnReserve is how many of the contacts table's 1,600 column slots field columns leave to
// Cairn's own migrations. A slot once used stays used (dropped columns keep theirs), so this
// also covers a table whose slots an older Cairn spent on retypes: its new fields simply get
// no column.
const columnReserve = 100

// columnRoom reports whether contacts can take one more column within columnReserve.
func columnRoom(ctx context.Context, tx pgx.Tx) (bool, error) {
	var used int
	if err := tx.QueryRow(ctx, `SELECT max(attnum) FROM pg_attribute WHERE attrelid = 'contacts'::regclass`).Scan(&used); err != nil {
		return false, fmt.Errorf("count contacts columns: %w", err)
	}
	return used+1 <= 1600-columnReserve, nil
}

// addMissingFieldColumns gives columns to text and number fields that have none for their
// type (defined before field columns, migration 18, or before their form changed, migration
// 31), so an upgrade gets the same speed and answers as a new database.
func addMissingFieldColumns(ctx context.Context, db DB) error {
	rows, err := db.Query(ctx, `SELECT name, type, label FROM field_definitions
		WHERE (type = 'text' AND text_column IS NULL) OR (type = 'number' AND number_column IS NULL) ORDER BY name`)
	if err != nil {
		return fmt.Errorf("read fields: %w", err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FieldDefinition])
	if err != nil {
		return fmt.Errorf("read fields: %w", err)
	}
	for _, f := range defs {
		if _, builtin := profileColumns[f.Name]; builtin {
			continue
		}
		if err := PutField(ctx, db, f); err != nil {
			return err
		}
	}
	return nil
}

// fieldKeyChars is how much of a text field's value its column keeps: 500 characters, at most
// 2,000 bytes, so that the column's index entry stays under btree's 2,704-byte row limit
// whatever a contact's traits hold. Equality with a longer value reads traits as well.
const fieldKeyChars = 500

// fieldColumnKinds are the field types kept in a column: its SQL type, the expression over
// traits (%L is the field name) that fills it, the suffix of its name, and its slot (0 text,
// 1 number). Each holds what the condition compiler reads from traits for the tests it serves:
// the field's text (cairn_text: a string or a number, without surrounding spaces, NULL when
// blank) lower-cased and cut to fieldKeyChars, and its number (cairn_number). Dates stay in
// traits: reading a time depends on the session's time zone, and a generated column must not.
var fieldColumnKinds = map[string]struct {
	sqlType, expr, suffix string
	slot                  int
}{
	"text":   {"text", fmt.Sprintf(`left(lower(cairn_text(traits -> %%L)), %d)`, fieldKeyChars), "_text", 0},
	"number": {"numeric", `cairn_number(traits -> %L)`, "_num", 1},
}

// fieldColumnName is a readable, unique stem for a field's columns: field_<name>_<hash>.
func fieldColumnName(field string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(field) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
			b.WriteByte('_')
		}
		if b.Len() >= 32 {
			break
		}
	}
	sum := sha256.Sum256([]byte(field))
	return "field_" + strings.Trim(b.String(), "_") + "_" + hex.EncodeToString(sum[:4])
}

// addFieldColumn adds the generated column and its index. DDL takes no parameters, so
// PostgreSQL's format() quotes the column (%I) and the field name (%L) into the statement.
func addFieldColumn(ctx context.Context, tx pgx.Tx, column string, f FieldDefinition) error {
	kind := fieldColumnKinds[f.Type]
	expr := strings.ReplaceAll(kind.expr, "%L", "%2$L")
	template := "ALTER TABLE contacts ADD COLUMN %1$I " + kind.sqlType + " GENERATED ALWAYS AS (" + expr + ") STORED"
	var ddl, index string
	err := tx.QueryRow(ctx, `SELECT format($3::text, $1::text, $2::text), format('CREATE INDEX %I ON contacts (%I, score)', $1::text || '_score', $1::text)`,
		column, f.Name, template).Scan(&ddl, &index)
	if err != nil {
		return fmt.Errorf("field %s column: %w", f.Name, err)
	}
	for _, stmt := range []string{ddl, index} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("field %s column: %w", f.Name, err)
		}
	}
	return nil
}

// fieldColumn is a defined field's columns, for the condition compiler: its text key and its
// number ("" when it has none). Either serves tests whatever the field's type is now: both
// are generated from traits, so they are never stale.
type fieldColumn struct {
	text, number string
}

// fieldColumns maps defined fields that have a column to them; nil when the condition tests
// no field, so most checks pay no extra query.
func fieldColumns(ctx context.Context, db DB, cond journey.Condition) (map[string]fieldColumn, error) {
	if len(cond.FieldRefs("")) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, `SELECT name, COALESCE(text_column, ''), COALESCE(number_column, '') FROM field_definitions
		WHERE text_column IS NOT NULL OR number_column IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read field columns: %w", err)
	}
	defer rows.Close()
	out := map[string]fieldColumn{}
	for rows.Next() {
		var name string
		var fc fieldColumn
		if err := rows.Scan(&name, &fc.text, &fc.number); err != nil {
			return nil, err
		}
		out[name] = fc
	}
	return out, rows.Err()
}

// fieldTypes maps each defined custom field to its type.
func fieldTypes(ctx context.Context, db DB) (map[string]string, error) {
	rows, err := db.Query(ctx, `SELECT name, type FROM field_definitions`)
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
func CheckFields(ctx context.Context, db DB, refs []journey.FieldRef) ([]journey.Problem, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	defs, err := fieldTypes(ctx, db)
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
