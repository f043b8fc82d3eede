package journey_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestWindowKeepsLocalOfficeHoursAcrossADSTChange(t *testing.T) {
	t.Parallel()
	lisbon := zone(t, "Europe/Lisbon")
	w := journey.Window{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "09:00", To: "17:00"}
	// Friday 27 March 2026, 18:00 in Lisbon (WET, UTC+0). Clocks go forward on Sunday 29th.
	fri := time.Date(2026, 3, 27, 18, 0, 0, 0, lisbon)
	next := w.Next(fri, lisbon)
	require.Equal(t, time.Date(2026, 3, 30, 9, 0, 0, 0, lisbon), next)
	require.Equal(t, time.Date(2026, 3, 30, 8, 0, 0, 0, time.UTC), next.UTC(), "09:00 local is 08:00 UTC after the change")

	// Inside the window: no wait.
	tue := time.Date(2026, 3, 31, 10, 30, 0, 0, lisbon)
	require.Equal(t, tue, w.Next(tue, lisbon))
	// Before opening on a weekday: the same day's opening.
	early := time.Date(2026, 3, 31, 7, 0, 0, 0, lisbon)
	require.Equal(t, time.Date(2026, 3, 31, 9, 0, 0, 0, lisbon), w.Next(early, lisbon))
}

func TestWindowIsComputedInTheContactsZoneNotUTC(t *testing.T) {
	t.Parallel()
	ny := zone(t, "America/New_York")
	w := journey.Window{Days: []string{"sat"}, From: "10:00", To: "12:00"}
	// Saturday 03:00 UTC is still Friday 23:00 in New York.
	at := time.Date(2026, 6, 6, 3, 0, 0, 0, time.UTC)
	require.Equal(t, time.Date(2026, 6, 6, 10, 0, 0, 0, ny), w.Next(at, ny))
}

func TestDateWaitAppliesOffsetInCalendarDaysAndTimeOfDay(t *testing.T) {
	t.Parallel()
	lisbon := zone(t, "Europe/Lisbon")
	minus1, err := journey.ParseOffset("-1d")
	require.NoError(t, err)
	w := journey.DateWait{Field: "renewal", Offset: &minus1, At: "09:30"}
	got, err := w.Target("2026-03-30", lisbon)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 3, 29, 9, 30, 0, 0, lisbon), got, "the day before, at 09:30 local, on the DST day itself")

	_, err = w.Target("soon", lisbon)
	require.Error(t, err)
	fixed := journey.DateWait{Date: "2026-12-24T18:00:00Z"}
	got, err = fixed.Target("", lisbon)
	require.NoError(t, err)
	require.True(t, got.Equal(time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)))
}

func TestCalendarWaitsDecodeAndReportBadValues(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte(`
id: j
trigger: {event: e}
timezone: Europe/Lisbon
steps:
  - {wait_until_date: {field: birthday, offset: -3d, at: "09:00"}}
  - {wait_for_window: {days: [mon, fri], from: "09:00", to: "17:00"}}
`))
	require.NoError(t, err)
	require.Equal(t, "wait until field birthday -3d at 09:00", j.Steps[0].Summary())
	require.Equal(t, -72*time.Hour, j.Steps[0].WaitUntilDate.Offset.D)

	for doc, want := range map[string]string{
		"{wait_until_date: {date: tomorrow}}":                                 "not a date",
		"{wait_until_date: {}}":                                               "needs a date",
		"{wait_for_window: {days: [funday], from: \"09:00\", to: \"17:00\"}}": `"funday" is not a day`,
		"{wait_for_window: {from: \"25:00\", to: \"17:00\"}}":                 "not a time of day",
		"{wait_for_window: {from: \"17:00\", to: \"09:00\"}}":                 "is not before",
	} {
		_, err := journey.Decode([]byte("id: j\ntrigger: {event: e}\nsteps: [" + doc + "]"))
		require.Error(t, err, doc)
		require.Contains(t, err.Error(), want, doc)
	}
	_, err = journey.Decode([]byte("id: j\ntrigger: {event: e}\ntimezone: Mars/Olympus\nsteps: [end]"))
	require.ErrorContains(t, err, "not an IANA time zone")
}
