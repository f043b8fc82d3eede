package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func setup(t *testing.T) (context.Context, *activities.Activities, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	s := pool
	return ctx, &activities.Activities{DB: s}, s
}

func contact(t *testing.T, ctx context.Context, s *pgxpool.Pool, ext string, traits map[string]any) int64 {
	t.Helper()
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: ext, Traits: traits, Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	c, err := crm.ContactByExternalID(ctx, s, ext)
	require.NoError(t, err)
	return c.ID
}

func TestScheduleWaitUsesContactThenJourneyThenUTCTimeZone(t *testing.T) {
	t.Parallel()
	ctx, a, s := setup(t)
	w := &journey.Window{From: "09:00", To: "10:00"}
	after := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

	tokyo := contact(t, ctx, s, "tokyo", map[string]any{"timezone": "Asia/Tokyo"})
	out, err := a.ScheduleWait(ctx, activities.ScheduleInput{ContactID: tokyo, Window: w, DefaultTimezone: "Europe/Lisbon", After: after})
	require.NoError(t, err)
	require.Equal(t, "Asia/Tokyo (contact)", out.Zone)
	require.Equal(t, time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC), out.At.UTC(), "09:00 in Tokyo is midnight UTC")

	bogus := contact(t, ctx, s, "bogus", map[string]any{"timezone": "Nowhere/Special"})
	out, err = a.ScheduleWait(ctx, activities.ScheduleInput{ContactID: bogus, Window: w, DefaultTimezone: "Europe/Lisbon", After: after})
	require.NoError(t, err)
	require.Equal(t, "Europe/Lisbon (journey)", out.Zone)
	require.Equal(t, time.Date(2026, 7, 2, 8, 0, 0, 0, time.UTC), out.At.UTC())

	out, err = a.ScheduleWait(ctx, activities.ScheduleInput{ContactID: bogus, Window: w, After: after})
	require.NoError(t, err)
	require.Equal(t, "UTC", out.Zone)
}

func TestScheduleWaitOnAMissingDateFieldDoesNotWaitAndSaysWhy(t *testing.T) {
	t.Parallel()
	ctx, a, s := setup(t)
	id := contact(t, ctx, s, "u", map[string]any{"renewal": "2026-09-01"})
	out, err := a.ScheduleWait(ctx, activities.ScheduleInput{ContactID: id, Date: &journey.DateWait{Field: "birthday"}, After: time.Now()})
	require.NoError(t, err)
	require.True(t, out.At.IsZero())
	require.Contains(t, out.Note, "birthday is not set")

	out, err = a.ScheduleWait(ctx, activities.ScheduleInput{ContactID: id, Date: &journey.DateWait{Field: "renewal", At: "09:00"}, After: time.Now()})
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC), out.At.UTC())
}

func TestCheckConditionOnAnInvalidConditionFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	ctx, a, s := setup(t)
	id := contact(t, ctx, s, "u", nil)
	_, err := a.CheckCondition(ctx, activities.CheckInput{ContactID: id, Condition: journey.Condition{Event: &journey.EventTest{Name: "x", SinceEntry: true}}})
	require.ErrorContains(t, err, "since_entry only has a meaning inside a journey")
}
