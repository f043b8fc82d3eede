package activities_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

func TestScanDatesRecordsEachContactsDateOnceADay(t *testing.T) {
	t.Parallel()
	ctx, a, s := setup(t)
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for doc := range map[string]bool{
		"id: bday\ntrigger: {date_field: birthday, anniversary: true}\nsteps: [{add_tag: bday}]":   true,
		"id: renew\ntrigger: {date_field: renewal, offset: -3d}\nsteps: [{add_tag: renewal-soon}]": true,
	} {
		j, err := journey.Decode([]byte(doc))
		require.NoError(t, err)
		_, _, err = crm.ApplyJourney(ctx, s, j, doc)
		require.NoError(t, err)
	}
	contact(t, ctx, s, "born-today", map[string]any{"birthday": "1990-11-26"})
	contact(t, ctx, s, "born-tomorrow", map[string]any{"birthday": "1990-11-27"})
	contact(t, ctx, s, "born-this-very-day", map[string]any{"birthday": "2026-11-26"}) // no anniversary yet
	contact(t, ctx, s, "renews-in-3-days", map[string]any{"renewal": "2026-11-29T10:00:00Z"})
	contact(t, ctx, s, "renews-today", map[string]any{"renewal": "2026-11-26"})
	contact(t, ctx, s, "not-a-date", map[string]any{"renewal": "soon", "birthday": 12})

	out, err := a.ScanDates(ctx, now)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"birthday+0d/yearly": 1, "renewal-3d": 1}, out.Recorded)
	again, err := a.ScanDates(ctx, now.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"birthday+0d/yearly": 0, "renewal-3d": 0}, again.Recorded, "an hour later: nothing new")

	rows, err := s.Query(ctx, `SELECT c.external_id, e.properties->>'rule' FROM events e JOIN contacts c ON c.id = e.contact_id
		WHERE e.name = 'date_reached' ORDER BY 1`)
	require.NoError(t, err)
	var got [][2]string
	for rows.Next() {
		var ext, rule string
		require.NoError(t, rows.Scan(&ext, &rule))
		got = append(got, [2]string{ext, rule})
	}
	require.Equal(t, [][2]string{{"born-today", "birthday+0d/yearly"}, {"renews-in-3-days", "renewal-3d"}}, got)

	// The journeys' triggers match those events.
	j, err := journey.Decode([]byte("id: renew\ntrigger: {date_field: renewal, offset: -3d}\nsteps: [end]"))
	require.NoError(t, err)
	require.NotNil(t, j.TriggeredBy("date_reached", map[string]any{"rule": "renewal-3d"}))
	require.Nil(t, j.TriggeredBy("date_reached", map[string]any{"rule": "birthday+0d/yearly"}))
}

func TestHourlyRecheckMovesContactsInAndOutOfTimeBasedSegments(t *testing.T) {
	t.Parallel()
	ctx, a, s := setup(t)
	cond, err := journey.DecodeCondition([]byte("{all: [{event: Order Completed}, {not: {event: Order Completed, within: 30d}}]}"))
	require.NoError(t, err)
	_, err = crm.PutSegment(ctx, s, crm.Segment{ID: "lapsed", Condition: *cond})
	require.NoError(t, err)
	doc := "id: winback\ntrigger: {segment_entered: lapsed}\nsteps: [end]"
	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	_, _, err = crm.ApplyJourney(ctx, s, j, doc)
	require.NoError(t, err)
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "old", Name: "Order Completed", Source: "test", OccurredAt: time.Now().Add(-40 * 24 * time.Hour)})
	require.NoError(t, err)
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "recent", Name: "Order Completed", Source: "test", OccurredAt: time.Now().Add(-2 * 24 * time.Hour)})
	require.NoError(t, err)

	out, err := a.RecheckSegments(ctx, time.Now())
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"entered": 1, "exited": 0}, out)
	out, err = a.RecheckSegments(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"entered": 0, "exited": 0}, out, "no change, no event")
	// A month later the recent buyer has lapsed too.
	out, err = a.RecheckSegments(ctx, time.Now().Add(31*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"entered": 1, "exited": 0}, out)
	// Back to today, after a new order from "old": both have ordered within 30 days again.
	_, _, err = crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "old", Name: "Order Completed", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	out, err = a.RecheckSegments(ctx, time.Now())
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"entered": 0, "exited": 2}, out)
}
