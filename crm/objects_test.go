package crm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/object"
)

const subscriptionType = `
name: Subscription
schema:
  type: object
  properties:
    plan: {type: string}
    status: {enum: [active, past_due, cancelled]}
    renews: {type: string, format: date}
    seats: {type: integer, minimum: 1}
  required: [status]
sources:
  - {event: Subscription Updated, id: subscription_id}
`

func putType(t *testing.T, s crm.DB, id, doc string) {
	t.Helper()
	ty, err := object.Decode(id, []byte(doc))
	require.NoError(t, err)
	_, err = crm.PutObjectType(t.Context(), s, ty, doc)
	require.NoError(t, err)
}

func TestRecordsAreWrittenByTheAPIAndBySourceEventsAndCheckedAgainstTheirSchema(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC().Truncate(time.Second)
	putType(t, s, "subscription", subscriptionType)

	created, changed, err := crm.PutRecord(ctx, s, "subscription", "sub_1", "ada", map[string]any{"status": "active", "plan": "pro", "renews": "2026-05-01"}, now)
	require.NoError(t, err)
	require.True(t, created && changed)
	_, changed, err = crm.PutRecord(ctx, s, "subscription", "sub_1", "ada", map[string]any{"status": "active", "plan": "pro", "renews": "2026-05-01"}, now)
	require.NoError(t, err)
	require.False(t, changed, "the same fields again change nothing")
	_, _, err = crm.PutRecord(ctx, s, "subscription", "sub_2", "ada", map[string]any{"status": "paused", "seats": 0}, now)
	var re *crm.RecordError
	require.True(t, errors.As(err, &re), "%v", err)
	require.Equal(t, []string{"fields.seats", "fields.status"}, []string{re.Problems[0].Path, re.Problems[1].Path})
	_, err = crm.RecordByID(ctx, s, "subscription", "sub_2")
	require.ErrorIs(t, err, crm.ErrNotFound, "nothing written")

	// A source event merges its properties the schema names into the record.
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "ada", Name: "Subscription Updated", Source: "test", OccurredAt: now,
		Properties: map[string]any{"subscription_id": "sub_1", "status": "past_due", "note": "not a field"}})
	require.NoError(t, err)
	r, err := crm.RecordByID(ctx, s, "subscription", "sub_1")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"status": "past_due", "plan": "pro", "renews": "2026-05-01"}, r.Fields)
	require.Equal(t, "ada", r.ExternalID)
	var changedProps map[string]any
	require.NoError(t, s.QueryRow(ctx, `SELECT properties FROM events WHERE name = 'object_changed' ORDER BY id DESC LIMIT 1`).Scan(&changedProps))
	require.Equal(t, "subscription", changedProps["object"])
	require.Equal(t, "sub_1", changedProps["record"])
	require.Equal(t, []any{"status"}, changedProps["changed"])
	require.Equal(t, "past_due", changedProps["status"])

	// A source event whose record the schema refuses is refused, with its path; in a batch,
	// with its place, and nothing of the batch is recorded.
	events := count(t, ctx, s, `SELECT count(*) FROM events`)
	_, err = crm.RecordEvents(ctx, s, []crm.EventInput{
		{ExternalID: "bo", Name: "Signed Up", Source: "test", OccurredAt: now},
		{ExternalID: "bo", Name: "Subscription Updated", Source: "test", OccurredAt: now, Properties: map[string]any{"subscription_id": "sub_9", "renews": "soon"}},
	})
	require.True(t, errors.As(err, &re), "%v", err)
	require.Equal(t, 1, re.Index)
	require.Equal(t, "properties", re.Problems[0].Path, "status is required")
	require.Equal(t, "properties.renews", re.Problems[1].Path)
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "bo", Name: "Subscription Updated", Source: "test", OccurredAt: now, Properties: map[string]any{"status": "active"}})
	require.True(t, errors.As(err, &re))
	require.Equal(t, "properties.subscription_id", re.Problems[0].Path)
	require.Equal(t, events, count(t, ctx, s, `SELECT count(*) FROM events`))

	// A new schema must fit the records there are.
	stricter := "schema: {type: object, properties: {status: {enum: [active]}}, required: [status]}"
	ty, err := object.Decode("subscription", []byte(stricter))
	require.NoError(t, err)
	_, err = crm.PutObjectType(ctx, s, ty, stricter)
	var ve *journey.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
	require.Equal(t, `records["sub_1"].status`, ve.Problems[0].Path)
	got, err := crm.ObjectTypeByID(ctx, s, "subscription")
	require.NoError(t, err)
	require.Equal(t, int64(1), got.Records)
	require.Equal(t, []object.Source{{Event: "Subscription Updated", ID: "subscription_id"}}, got.Sources, "unchanged")

	// Templates see the records; erasure takes them.
	ada, err := crm.ContactByExternalID(ctx, s, "ada")
	require.NoError(t, err)
	c, err := crm.TemplateContext(ctx, s, crm.TemplateInput{ContactID: ada.ID, Now: now})
	require.NoError(t, err)
	require.Equal(t, "past_due", c.Objects["subscription"][0].Fields["status"])
	require.Contains(t, crm.ContactTables(), "object_records")
	require.NoError(t, crm.DeleteRecord(ctx, s, "subscription", "sub_1", now))
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM events WHERE name = 'object_deleted'`))
}

func TestObjectConditionsTestTheRecordsOfTheContact(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	putType(t, s, "subscription", subscriptionType)
	put := func(ext, id string, fields map[string]any) {
		_, _, err := crm.PutRecord(ctx, s, "subscription", id, ext, fields, now)
		require.NoError(t, err)
	}
	put("ada", "a1", map[string]any{"status": "active", "renews": "2026-04-05", "seats": 3})
	put("bo", "b1", map[string]any{"status": "active", "renews": "2026-06-01"})
	put("bo", "b2", map[string]any{"status": "cancelled", "renews": "2026-04-03"})
	newContact(t, ctx, s, "cy", nil)
	for doc, want := range map[string][]string{
		"{object: subscription}": {"ada", "bo"},
		"{object: subscription, where: {status: active}, renews: {within_next: 7d}}":                                     {"ada"},
		"{object: subscription, renews: {within_next: 7d}}":                                                              {"ada", "bo"},
		"{object: subscription, where: {status: active}, at_least: 2}":                                                   {},
		"{object: subscription, at_least: 2}":                                                                            {"bo"},
		"{object: subscription, at_least: 0}":                                                                            {"ada", "bo", "cy"},
		"{event: Order Completed, at_least: 0}":                                                                          {"ada", "bo", "cy"},
		"{not: {object: subscription, where: {status: cancelled}}}":                                                      {"ada", "cy"},
		"{object: subscription, seats: {gte: 2}}":                                                                        {"ada"},
		"{object: subscription, status: {equals: ACTIVE}}":                                                               {"ada", "bo"},
		"{object: subscription, where: {status: ACTIVE}}":                                                                {},
		"{all: [{object: subscription, status: {equals: active}}, {object: subscription, status: {equals: cancelled}}]}": {"bo"},
	} {
		c, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err, doc)
		page, err := crm.SegmentContacts(ctx, s, *c, crm.Env{Now: now}, 0, 100)
		require.NoError(t, err, doc)
		got := []string{}
		for _, p := range page {
			got = append(got, p.ExternalID)
		}
		require.Equal(t, want, got, doc)
	}
}
