package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// TestRetypingAFieldReplacesItsColumn: a text field's column holds strings, the same field
// as a number holds numbers, and as a date it has no column (tests read traits again); the
// answers follow the type each time, and odd names are quoted, never spliced.
func TestRetypingAFieldReplacesItsColumn(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	name := `Ann's "size"; DROP TABLE contacts`
	for ext, v := range map[string]any{"a": "12", "b": 12.0, "c": "2026-01-02"} {
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: ext, Traits: map[string]any{name: v}, Name: "identify", Source: "test", OccurredAt: time.Now()})
		require.NoError(t, err)
	}
	column := func() *string {
		var c *string
		require.NoError(t, s.QueryRow(ctx, `SELECT column_name FROM field_definitions WHERE name = $1`, name).Scan(&c))
		return c
	}
	columnType := func(column string) string {
		var typ string
		require.NoError(t, s.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'contacts' AND column_name = $1`, column).Scan(&typ))
		return typ
	}
	count := func(test string, value any) int64 {
		cond := journey.Condition{Field: &journey.FieldTest{Name: name, Op: test, Value: value}}
		n, err := crm.CountMatching(ctx, s, cond, crm.Env{Now: time.Now()})
		require.NoError(t, err)
		return n
	}

	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: name, Type: "text"}))
	text := column()
	require.NotNil(t, text)
	require.Equal(t, "text", columnType(*text))
	require.EqualValues(t, 1, count(journey.OpEquals, "12"), "only the string")
	require.EqualValues(t, 2, count(journey.OpNotEquals, "12"))

	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: name, Type: "number"}))
	number := column()
	require.NotNil(t, number)
	require.Equal(t, "numeric", columnType(*number), "the column was replaced by one of the new type")
	require.EqualValues(t, 2, count(journey.OpEquals, 12.0), "the number and the numeric string")
	require.EqualValues(t, 2, count(journey.OpGTE, 12.0))
	var left int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'contacts' AND column_name LIKE 'field\_%'`).Scan(&left))
	require.Equal(t, 1, left, "the text column is gone")

	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: name, Type: "date"}))
	require.Nil(t, column())
	require.EqualValues(t, 1, count(journey.OpBefore, "2026-02-01"))
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM contacts`).Scan(&left))
	require.Equal(t, 3, left)
}
