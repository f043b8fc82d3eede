package crm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

func TestProfileColumnsComeFromTraitsThenFromWhatTheSenderObserved(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now()
	record := func(in crm.EventInput) *crm.Contact {
		t.Helper()
		in.Name, in.Source, in.OccurredAt = "x", "test", now
		_, _, err := crm.RecordEvent(ctx, s, in)
		require.NoError(t, err)
		c, err := crm.ContactByExternalID(ctx, s, in.ExternalID)
		require.NoError(t, err)
		return c
	}

	ann := record(crm.EventInput{ExternalID: "ann", Traits: map[string]any{
		"phone": 351912345678, "firstName": "Ann", "last_name": "Lee", "timezone": "Europe/Lisbon", "device_type": "mobile",
		"address": map[string]any{"country": "PT", "state": "Lisboa", "city": "Lisbon"},
	}})
	require.Equal(t, []string{"351912345678", "Ann", "Lee", "Europe/Lisbon", "PT", "Lisboa", "Lisbon", "mobile"},
		[]string{ann.Phone, ann.FirstName, ann.LastName, ann.Timezone, ann.Country, ann.Region, ann.City, ann.DeviceType})

	ann = record(crm.EventInput{ExternalID: "ann", Observed: crm.Observed{Country: "Spain", Region: "Madrid", City: "Madrid", DeviceType: "desktop", Timezone: "Europe/Madrid"}})
	require.Equal(t, []string{"PT", "Lisboa", "Lisbon", "mobile", "Europe/Lisbon"}, []string{ann.Country, ann.Region, ann.City, ann.DeviceType, ann.Timezone},
		"traits win over what the sender observed")

	bob := record(crm.EventInput{ExternalID: "bob", Observed: crm.Observed{Country: "Spain", City: "Madrid", DeviceType: "tablet", Timezone: "Europe/Madrid"}})
	require.Equal(t, []string{"Spain", "", "Madrid", "tablet", "Europe/Madrid"}, []string{bob.Country, bob.Region, bob.City, bob.DeviceType, bob.Timezone})
	bob = record(crm.EventInput{ExternalID: "bob", Traits: map[string]any{"plan": "pro"}})
	require.Equal(t, []string{"Spain", "Madrid", "tablet"}, []string{bob.Country, bob.City, bob.DeviceType}, "an absent value never blanks a stored one")
	bob = record(crm.EventInput{ExternalID: "bob", Traits: map[string]any{"country": "FR", "firstName": "Bob"}, Observed: crm.Observed{Country: "Spain"}})
	require.Equal(t, "FR", bob.Country)
	bob = record(crm.EventInput{ExternalID: "bob", Traits: map[string]any{"country": ""}})
	require.Empty(t, bob.Country, "a trait set blank clears its column")
	bob = record(crm.EventInput{ExternalID: "bob", Observed: crm.Observed{Country: "Italy"}})
	require.Equal(t, "Italy", bob.Country, "with the trait blank, what the sender observes fills the column again")

	_, err := crm.UpdateFields(ctx, s, crm.Action{Key: "f1", ContactID: bob.ID, At: time.Now()}, map[string]any{"first_name": "Robert", "city": "Rome"})
	require.NoError(t, err)
	_, err = crm.UpdateFields(ctx, s, crm.Action{Key: "f2", ContactID: bob.ID, At: time.Now()}, map[string]any{"firstName": nil})
	require.NoError(t, err)
	bob, err = crm.ContactByID(ctx, s, bob.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"Robert", "Rome"}, []string{bob.FirstName, bob.City}, "update_fields keeps the columns in step")

	_, inserted, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "cyd", Name: "x", Source: "test", DedupeKey: "k1", OccurredAt: now, Observed: crm.Observed{City: "Porto"}})
	require.NoError(t, err)
	require.True(t, inserted)
	_, inserted, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "cyd", Name: "x", Source: "test", DedupeKey: "k1", OccurredAt: now, Observed: crm.Observed{City: "Braga"}})
	require.NoError(t, err)
	require.False(t, inserted)
	cyd, err := crm.ContactByExternalID(ctx, s, "cyd")
	require.NoError(t, err)
	require.Equal(t, "Porto", cyd.City, "a redelivered event changes nothing")
}

// TestABlankTraitClearsAProfileColumnTheSenderObserved: a country that came from Segment's
// context, not from a trait, is cleared by a trait set to "" (or null) as one from a trait is;
// traits win over what the same call observed; a blank trait stored earlier does not blank
// what is observed later.
func TestABlankTraitClearsAProfileColumnTheSenderObserved(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	record := func(ext string, traits map[string]any, seen crm.Observed) *crm.Contact {
		t.Helper()
		_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: ext, Traits: traits, Observed: seen, Name: "identify", Source: "test", OccurredAt: time.Now()})
		require.NoError(t, err)
		c, err := crm.ContactByExternalID(ctx, s, ext)
		require.NoError(t, err)
		return c
	}
	ann := record("ann", nil, crm.Observed{Country: "PT", City: "Lisbon", DeviceType: "mobile"})
	require.Equal(t, "PT", ann.Country)
	ann = record("ann", map[string]any{"country": "", "city": nil}, crm.Observed{})
	require.Empty(t, ann.Country, "observed, then cleared by a blank trait")
	require.Empty(t, ann.City, "a null trait clears too")
	require.Equal(t, "mobile", ann.DeviceType, "a trait not written leaves its column")
	ann = record("ann", map[string]any{"plan": "pro"}, crm.Observed{Country: "ES"})
	require.Equal(t, "ES", ann.Country, "the blank trait stored earlier does not blank a later observation")

	bob := record("bob", map[string]any{"address": map[string]any{"country": " "}}, crm.Observed{Country: "FR"})
	require.Empty(t, bob.Country, "traits win over what the same call observed")
	bob = record("bob", nil, crm.Observed{Country: "FR"})
	require.Equal(t, "FR", bob.Country)

	for _, doc := range []string{"{field: country, equals: es}", "{field: country, equals: fr}"} {
		cond, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err)
		n, err := crm.CountMatching(ctx, s, *cond, crm.Env{Now: time.Now()})
		require.NoError(t, err)
		require.EqualValues(t, 1, n, doc)
	}
}

func TestFieldTestsOnProfileFieldsReadTheColumns(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC()
	ids := map[string]int64{}
	for ext, in := range map[string]crm.EventInput{
		"ann": {Traits: map[string]any{"country": "PT", "city": "Lisbon", "phone": "+351 91"}},
		"bob": {Observed: crm.Observed{Country: "pt", City: "Porto", DeviceType: "mobile"}},
		"cyd": {Traits: map[string]any{"address": map[string]any{"country": "ES"}}, Observed: crm.Observed{Country: "PT"}},
		"dee": {},
	} {
		in.ExternalID, in.Name, in.Source, in.OccurredAt = ext, "identify", "test", now
		_, _, err := crm.RecordEvent(ctx, s, in)
		require.NoError(t, err)
		c, err := crm.ContactByExternalID(ctx, s, ext)
		require.NoError(t, err)
		ids[ext] = c.ID
	}
	for _, tc := range []struct {
		cond string
		want []string
	}{
		{"{field: country, equals: PT}", []string{"ann", "bob"}},
		{"{field: country, equals: pt}", []string{"ann", "bob"}},
		{"{field: country, not_equals: PT}", []string{"cyd"}}, // dee has no country
		{"{field: country, equals: ' pT '}", []string{"ann", "bob"}},
		{"{not: {field: country, equals: PT}}", []string{"cyd", "dee"}},
		{"{field: country, is_set: true}", []string{"ann", "bob", "cyd"}},
		{"{field: city, starts_with: por}", []string{"bob"}},
		{"{field: device_type, equals: mobile}", []string{"bob"}},
		{"{field: device_type, is_blank: true}", []string{"ann", "cyd", "dee"}},
		{"{field: phone, contains: '+351'}", []string{"ann"}},
	} {
		requireMembers(t, ctx, s, ids, now, tc.cond, tc.want)
	}
}

// TestFieldEqualityIsServedByAnIndex runs equality tests with sequential scans disabled and
// checks that the index meant for each was used: a test wrapped so that no index can serve
// it would fall back to a scan unnoticed. (Equality on a field that is not defined reads
// traits: it ignores case, which their GIN index cannot.)
func TestFieldEqualityIsServedByAnIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	require.NoError(t, err)
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, crm.Migrate(ctx, pool))
	s := pool
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "ann", Traits: map[string]any{"country": "PT", "plan": "pro"}, Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	scans := func(index string) int64 {
		t.Helper()
		_, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		require.NoError(t, err)
		var n int64
		err = pool.QueryRow(ctx, `SELECT COALESCE(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE schemaname = current_schema() AND indexrelname = $1`, index).Scan(&n)
		require.NoError(t, err)
		return n
	}
	cond, err := journey.DecodeCondition([]byte("{field: country, equals: pt}"))
	require.NoError(t, err)
	n, err := crm.CountMatching(ctx, s, *cond, crm.Env{Now: time.Now()})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Eventually(t, func() bool { return scans("contacts_country") > 0 }, 15*time.Second, 100*time.Millisecond, "index contacts_country never used")
	// Once plan is a defined text field, its tests read its own column, served by the
	// (column, score) index: a short value as it is, a long one by its first 500 characters.
	require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: "plan", Type: "text"}))
	var column string
	require.NoError(t, pool.QueryRow(ctx, `SELECT text_column FROM field_definitions WHERE name = 'plan'`).Scan(&column))
	for _, doc := range []string{"{field: plan, equals: PRO}", "{field: plan, equals: " + strings.Repeat("x", 600) + "}"} {
		cond, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err)
		before := scans(column + "_score")
		if len(doc) > 600 {
			_, err = crm.CountMatching(ctx, s, *cond, crm.Env{Now: time.Now()})
			require.NoError(t, err)
		} else {
			n, err := crm.CountMatching(ctx, s, *cond, crm.Env{Now: time.Now()})
			require.NoError(t, err)
			require.EqualValues(t, 1, n)
		}
		require.Eventually(t, func() bool { return scans(column+"_score") > before }, 15*time.Second, 100*time.Millisecond, doc)
	}
}
