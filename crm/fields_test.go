package crm_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// columnSlots is how many of the contacts table's 1,600 column slots are used, dropped
// columns included (PostgreSQL never gives those back).
func columnSlots(t *testing.T, ctx context.Context, s *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, s.QueryRow(ctx, `SELECT max(attnum) FROM pg_attribute WHERE attrelid = 'contacts'::regclass`).Scan(&n))
	return n
}

// fieldCount counts contacts matching one field test, all at once and one by one.
func fieldCount(t *testing.T, ctx context.Context, s *pgxpool.Pool, name, op string, value any) int64 {
	t.Helper()
	cond := journey.Condition{Field: &journey.FieldTest{Name: name, Op: op, Value: value}}
	n, err := crm.CountMatching(ctx, s, cond, crm.Env{Now: time.Now()})
	require.NoError(t, err)
	var one int64
	rows, err := s.Query(ctx, `SELECT id FROM contacts`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	for _, id := range ids {
		ok, err := crm.Matches(ctx, s, id, cond, crm.Env{Now: time.Now()})
		require.NoError(t, err)
		if ok {
			one++
		}
	}
	require.Equal(t, n, one, "%s %s %v: the count and the one-by-one checks agree", name, op, value)
	return n
}

// TestRetypingAFieldKeepsAColumnForEachTypeItHasHad: a text field's column holds its text, the
// same field as a number gets a number column beside it, as a date it reads traits, and going
// back to text adds nothing; the answers follow the type each time, and odd names are quoted,
// never spliced.
func TestRetypingAFieldKeepsAColumnForEachTypeItHasHad(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	name := `Ann's "size"; DROP TABLE contacts`
	for ext, v := range map[string]any{"a": "12", "b": 12.0, "c": "2026-01-02"} {
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: ext, Traits: map[string]any{name: v}, Name: "identify", Source: "test", OccurredAt: time.Now()})
		require.NoError(t, err)
	}
	columns := func() (text, number *string) {
		require.NoError(t, s.QueryRow(ctx, `SELECT text_column, number_column FROM field_definitions WHERE name = $1`, name).Scan(&text, &number))
		return text, number
	}
	columnType := func(column string) string {
		var typ string
		require.NoError(t, s.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'contacts' AND column_name = $1`, column).Scan(&typ))
		return typ
	}

	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: name, Type: "text"}))
	text, number := columns()
	require.NotNil(t, text)
	require.Nil(t, number)
	require.Equal(t, "text", columnType(*text))
	require.EqualValues(t, 2, fieldCount(t, ctx, s, name, journey.OpEquals, "12"), "the string and the number, as text")
	require.EqualValues(t, 1, fieldCount(t, ctx, s, name, journey.OpNotEquals, "12"))

	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: name, Type: "number"}))
	text2, number := columns()
	require.Equal(t, text, text2, "the text column stays")
	require.NotNil(t, number)
	require.Equal(t, "numeric", columnType(*number))
	require.EqualValues(t, 2, fieldCount(t, ctx, s, name, journey.OpEquals, 12.0), "the number and the numeric string")
	require.EqualValues(t, 2, fieldCount(t, ctx, s, name, journey.OpGTE, 12.0))
	slots := columnSlots(t, ctx, s)

	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: name, Type: "date"}))
	require.EqualValues(t, 1, fieldCount(t, ctx, s, name, journey.OpBefore, "2026-02-01"))
	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: name, Type: "text"}))
	require.Equal(t, slots, columnSlots(t, ctx, s), "back to text: no column added")
	var n int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'contacts' AND column_name LIKE 'field\_%'`).Scan(&n))
	require.Equal(t, 2, n)
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM contacts`).Scan(&n))
	require.Equal(t, 3, n)
}

// TestTwoThousandFieldTypeChangesLeaveRoomForNewFields: retyping changes no table, so however
// often fields are retyped, a new field still gets its column (PostgreSQL never gives back a
// dropped column's slot, and a column traded at each retype ran out after about 1,570).
func TestTwoThousandFieldTypeChangesLeaveRoomForNewFields(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "a", Traits: map[string]any{"size": "12", "seats": 3}, Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	before := columnSlots(t, ctx, s)
	types := []string{"text", "number", "date", "boolean"}
	for i := 0; i < 2000; i++ {
		require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: "size", Type: types[i%len(types)]}))
	}
	require.Equal(t, before+2, columnSlots(t, ctx, s), "one text and one number column, once")
	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: "seats", Type: "number"}))
	var column *string
	require.NoError(t, s.QueryRow(ctx, `SELECT number_column FROM field_definitions WHERE name = 'seats'`).Scan(&column))
	require.NotNil(t, column)
	require.EqualValues(t, 1, fieldCount(t, ctx, s, "seats", journey.OpEquals, 3.0))
}

// TestAFieldOnATableOutOfColumnSlotsIsKeptInTraits: a contacts table whose slots an older
// Cairn spent still takes new field definitions; they get no column, and their tests read
// traits with the same answers.
func TestAFieldOnATableOutOfColumnSlotsIsKeptInTraits(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "a", Traits: map[string]any{"plan": "Pro"}, Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	_, err = s.Exec(ctx, `DO $$ BEGIN
		FOR i IN 1..(1520 - (SELECT max(attnum) FROM pg_attribute WHERE attrelid = 'contacts'::regclass)) LOOP
			EXECUTE format('ALTER TABLE contacts ADD COLUMN spent_%s int', i);
			EXECUTE format('ALTER TABLE contacts DROP COLUMN spent_%s', i);
		END LOOP; END $$`)
	require.NoError(t, err)
	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: "plan", Type: "text"}))
	var column *string
	require.NoError(t, s.QueryRow(ctx, `SELECT text_column FROM field_definitions WHERE name = 'plan'`).Scan(&column))
	require.Nil(t, column, "no column: the last slots are kept for Cairn's own migrations")
	require.EqualValues(t, 1, fieldCount(t, ctx, s, "plan", journey.OpEquals, "pro"))
}

// TestALongTraitValueBreaksNeitherAFieldDefinitionNorItsContactsWrites: a btree index row
// holds at most 2,704 bytes; a field column keeps 500 characters of a text (2,000 bytes at
// most), a country's index the same, and a "number" over 100 characters is no number. The
// value first and the definition after, and the other way round; equality still compares
// the whole value.
func TestALongTraitValueBreaksNeitherAFieldDefinitionNorItsContactsWrites(t *testing.T) {
	t.Parallel()
	// Random characters, so that PostgreSQL cannot compress them under the limit.
	r := rand.New(rand.NewPCG(1, 2))
	random := func(n int, alphabet []rune) string {
		out := make([]rune, n)
		for i := range out {
			out[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(out)
	}
	long := random(3000, []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")) // 3,000 bytes
	wide := random(750, []rune("😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗😙😚🙂🤗🤩🤔🤨😐😑😶🙄😏😣😥😮🤐😯😪😫🥱"))                            // 3,000 bytes
	digits := strings.Repeat("9", 3000)                                                            // a numeric string no number column takes
	same := long[:500] + random(1000, []rune("xyz"))                                               // the same first 500 characters
	for _, order := range []string{"value first", "definition first"} {
		t.Run(order, func(t *testing.T) {
			t.Parallel()
			ctx, s := setup(t)
			define := func() {
				for _, f := range []crm.FieldDefinition{{Name: "note", Type: "text"}, {Name: "emoji", Type: "text"}, {Name: "amount", Type: "number"}} {
					require.NoError(t, crm.PutField(ctx, s, f))
				}
			}
			write := func(ext string, traits map[string]any) {
				_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: ext, Traits: traits, Name: "identify", Source: "test", OccurredAt: time.Now()})
				require.NoError(t, err)
			}
			if order == "definition first" {
				define()
			}
			write("a", map[string]any{"note": long, "emoji": wide, "amount": digits, "country": long})
			write("b", map[string]any{"note": same})
			if order == "value first" {
				define()
			}
			write("a", map[string]any{"plan": "pro"}) // the long values' contact is written again
			write("a", map[string]any{"note": long + "!", "city": wide})
			write("a", map[string]any{"note": long})

			require.EqualValues(t, 1, fieldCount(t, ctx, s, "note", journey.OpEquals, strings.ToUpper(long)), "the whole value, case ignored")
			require.EqualValues(t, 1, fieldCount(t, ctx, s, "note", journey.OpEquals, same))
			require.EqualValues(t, 0, fieldCount(t, ctx, s, "note", journey.OpEquals, long[:500]), "a prefix is not the value")
			require.EqualValues(t, 1, fieldCount(t, ctx, s, "note", journey.OpNotEquals, long))
			require.EqualValues(t, 1, fieldCount(t, ctx, s, "emoji", journey.OpEquals, wide))
			require.EqualValues(t, 1, fieldCount(t, ctx, s, "country", journey.OpEquals, long))
			require.EqualValues(t, 0, fieldCount(t, ctx, s, "amount", journey.OpGT, 0.0), "3,000 digits are not a number")
			require.EqualValues(t, 1, fieldCount(t, ctx, s, "amount", journey.OpIsSet, nil), "but they are set")
		})
	}
}
