package journey_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func TestQuietHoursEndAtTheLocalMorningAcrossDSTChangesInTwoTimeZones(t *testing.T) {
	t.Parallel()
	q := journey.QuietHours{From: "21:00", To: "08:00"}
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		at    time.Time
		end   time.Time
		night time.Duration
	}{
		// New York springs forward on 8 March 2026: the night from 22:00 is 9 hours.
		{"new york, spring forward", time.Date(2026, 3, 7, 22, 0, 0, 0, ny), time.Date(2026, 3, 8, 8, 0, 0, 0, ny), 9 * time.Hour},
		// ... and falls back on 1 November: 11 hours.
		{"new york, fall back", time.Date(2026, 10, 31, 22, 0, 0, 0, ny), time.Date(2026, 11, 1, 8, 0, 0, 0, ny), 11 * time.Hour},
		// Berlin springs forward on 29 March and falls back on 25 October, weeks from New York.
		{"berlin, spring forward", time.Date(2026, 3, 28, 23, 0, 0, 0, berlin), time.Date(2026, 3, 29, 8, 0, 0, 0, berlin), 8 * time.Hour},
		{"berlin, fall back", time.Date(2026, 10, 24, 23, 0, 0, 0, berlin), time.Date(2026, 10, 25, 8, 0, 0, 0, berlin), 10 * time.Hour},
		// After midnight the quiet hours end the same morning.
		{"berlin, small hours", time.Date(2026, 3, 29, 3, 30, 0, 0, berlin), time.Date(2026, 3, 29, 8, 0, 0, 0, berlin), 4*time.Hour + 30*time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end, quiet := q.End(tc.at, tc.at.Location())
			require.True(t, quiet)
			require.True(t, end.Equal(tc.end), "%s, want %s", end, tc.end)
			require.Equal(t, 8, end.In(tc.at.Location()).Hour(), "08:00 local, whatever the offset")
			require.Equal(t, tc.night, end.Sub(tc.at))
		})
	}
	// Outside the quiet hours, and at their very end, nothing waits.
	for _, at := range []time.Time{time.Date(2026, 3, 8, 8, 0, 0, 0, ny), time.Date(2026, 3, 8, 20, 59, 0, 0, ny)} {
		_, quiet := q.End(at, ny)
		require.False(t, quiet, at)
	}
	// Quiet hours within one day (12:00-14:00).
	lunch := journey.QuietHours{From: "12:00", To: "14:00"}
	end, quiet := lunch.End(time.Date(2026, 5, 1, 13, 0, 0, 0, berlin), berlin)
	require.True(t, quiet)
	require.Equal(t, time.Date(2026, 5, 1, 14, 0, 0, 0, berlin), end)
	_, quiet = lunch.End(time.Date(2026, 5, 1, 14, 0, 0, 0, berlin), berlin)
	require.False(t, quiet)
}

func TestEffectivePolicyTakesTheJourneysCapsAndQuietHoursWhereItSetsThem(t *testing.T) {
	t.Parallel()
	caps, err := journey.ParseCaps("2/24h, 5/7d")
	require.NoError(t, err)
	require.Equal(t, []journey.Cap{{Max: 2, Per: journey.Duration{D: 24 * time.Hour}}, {Max: 5, Per: journey.Duration{D: 7 * 24 * time.Hour}}}, caps)
	quiet, err := journey.ParseQuietHours("21:00-08:00")
	require.NoError(t, err)
	defaults := &journey.ChannelPolicy{Caps: caps, QuietHours: quiet}

	require.Equal(t, *defaults, journey.Effective(defaults, nil))
	none := journey.Effective(defaults, &journey.ChannelPolicy{Caps: []journey.Cap{}, QuietHours: &journey.QuietHours{Off: true}})
	require.Empty(t, none.Caps)
	require.Nil(t, none.QuietHours)
	mine := journey.Effective(defaults, &journey.ChannelPolicy{Caps: []journey.Cap{{Max: 1, Per: journey.Duration{D: time.Hour}}}})
	require.Equal(t, "cap 1 per 1h", mine.Caps[0].String())
	require.Equal(t, "quiet hours 21:00-08:00", mine.QuietHours.String(), "the default quiet hours stay")

	for _, bad := range []string{"0/1d", "2/0s", "2", "x/1d", "2/400d"} {
		_, err := journey.ParseCaps(bad)
		require.Error(t, err, bad)
	}
	for _, bad := range []string{"21:00", "21:00-21:00", "25:00-08:00"} {
		_, err := journey.ParseQuietHours(bad)
		require.Error(t, err, bad)
	}
}

func TestAPolicyRoundTripsThroughTheStoredDefinition(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte(`id: j
trigger: {event: A}
policy:
  email: {caps: [{max: 2, per: 24h}], quiet_hours: {from: "21:00", to: "08:00"}}
  sms: {caps: [], quiet_hours: off}
steps:
  - {send_email: {template: t, at: best_time, if_capped: skip}}
  - {send_sms: {text: Hi, transactional: true}}
`))
	require.NoError(t, err)
	b, err := json.Marshal(j)
	require.NoError(t, err)
	var back journey.Journey
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, *j, back)
	require.NotNil(t, back.Policy.SMS.Caps, "caps: [] (none) is not caps left out (the defaults)")
	require.True(t, back.Policy.SMS.QuietHours.Off)
	ch, rules, ok := back.Steps[1].Delivery()
	require.True(t, ok)
	require.Equal(t, journey.ChannelSMS, ch)
	require.True(t, rules.Transactional)
	require.Equal(t, journey.AtBestTime, back.Steps[0].SendEmail.At)
	require.NotNil(t, back.Steps[0].BestTimeWait())
}

func TestImpossiblePoliciesAndSplitTestsAreRefusedWithTheirPaths(t *testing.T) {
	t.Parallel()
	_, err := journey.Decode([]byte(`id: j
trigger: {event: A}
policy:
  email: {caps: [{max: 0, per: 1d}]}
steps:
  - id: subject
    split_test:
      variants:
        - {id: a, steps: [{send_email: {template: a}}]}
        - {id: b, steps: []}
      metric: opened
      confidence: 1.5
`))
	var ve *journey.ValidationError
	require.ErrorAs(t, err, &ve)
	got := map[string]int{}
	for _, p := range ve.Problems {
		got[p.Path] = p.Line
	}
	require.Equal(t, map[string]int{
		"policy.email.caps[0].max":              4,
		"steps[0].split_test.variants[1].steps": 10,
		"steps[0].split_test.confidence":        12,
	}, got, ve.Error())
}
