package sendtime_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/sendtime"
)

func TestTheBestHourIsTheOneRecentEngagementPointsAt(t *testing.T) {
	t.Parallel()
	lisbon, err := time.LoadLocation("Europe/Lisbon")
	require.NoError(t, err)
	now := time.Date(2026, 6, 1, 10, 15, 0, 0, lisbon) // a Monday
	var p sendtime.Profile
	r := rand.New(rand.NewPCG(1, 2))
	// Opens at around 19:00 on the past weeks' evenings, and a few at random hours.
	for day := 1; day <= 40; day++ {
		at := time.Date(2026, 6, 1-day, 19, r.IntN(60), 0, 0, lisbon)
		p.AddEvent(at, now, lisbon)
		p.AddEvent(now.Add(-time.Duration(r.IntN(40*24))*time.Hour), now, lisbon)
	}
	best, ok := p.Best(now, 24*time.Hour, lisbon, nil)
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 6, 1, 19, 0, 0, 0, lisbon), best)

	// An old habit fades: years-old opens at 07:00 lose to last week's at 21:00.
	var q sendtime.Profile
	for i := range 20 {
		q.AddEvent(time.Date(2024, 1, 1+i, 7, 0, 0, 0, lisbon), now, lisbon)
	}
	for i := range 3 {
		q.AddEvent(time.Date(2026, 5, 28+i, 21, 0, 0, 0, lisbon), now, lisbon)
	}
	best, _ = q.Best(now, 48*time.Hour, lisbon, nil)
	require.Equal(t, 21, best.In(lisbon).Hour())

	// Only allowed moments are chosen; the period's own first moment competes for its hour.
	var evenings sendtime.Profile
	evenings.AddEvent(time.Date(2026, 5, 30, 19, 0, 0, 0, lisbon), now, lisbon)
	best, ok = evenings.Best(now, 24*time.Hour, lisbon, func(c time.Time) bool { return c.In(lisbon).Hour() < 12 })
	require.True(t, ok)
	require.Equal(t, now, best, "no engagement before noon: the earliest allowed moment")
	_, ok = p.Best(now, 24*time.Hour, lisbon, func(time.Time) bool { return false })
	require.False(t, ok)
}

func TestHoursAreLocalAcrossADSTChange(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	var p sendtime.Profile
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, ny) // Saturday; clocks go forward on Sunday
	for w := 1; w <= 4; w++ {
		p.AddEvent(time.Date(2026, 3, 8-7*w, 9, 30, 0, 0, ny), now, ny) // Sundays at 09:30
	}
	best, ok := p.Best(now, 48*time.Hour, ny, nil)
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 3, 8, 9, 0, 0, 0, ny), best, "09:00 on Sunday, now in daylight time")
	require.Equal(t, 13, best.UTC().Hour(), "UTC-4 from Sunday, where the opens were at UTC-5")
	require.Equal(t, 6*24+9, sendtime.HourOfWeek(best.In(ny)))
	require.InDelta(t, 0.5, sendtime.Decay(sendtime.HalfLife), 1e-9)
}
