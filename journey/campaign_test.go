package journey_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func TestACampaignIsASegmentAJourneyAndASchedule(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	c, err := journey.DecodeCampaign([]byte("name: Spring\nsegment: buyers\njourney: spring\nschedule: {at: 2026-04-01T09:00:00+01:00}\nrate: 500"), now)
	require.NoError(t, err)
	require.Equal(t, "spring", c.EntryJourney())
	require.Equal(t, 500, c.Rate)
	require.Equal(t, 500, c.Batch)
	require.Equal(t, "once at 2026-04-01T08:00:00Z", c.Schedule.String())

	c, err = journey.DecodeCampaign([]byte(`{"segment": "buyers", "message": {"template": "news"}, "schedule": {"cron": "0 9 * * MON-FRI", "timezone": "Europe/Lisbon"}, "rate": 5000}`), now)
	require.NoError(t, err)
	c.ID = "weekly"
	require.Equal(t, "campaign.weekly", c.EntryJourney())
	require.Equal(t, 1000, c.Batch, "batches of at most 1,000")
	j, doc, err := c.MessageJourney()
	require.NoError(t, err)
	require.Equal(t, "campaign.weekly", j.ID)
	require.Equal(t, "news", j.Steps[0].SendEmail.Template)
	require.Contains(t, doc, "trigger: {manual: true}")

	c, err = journey.DecodeCampaign([]byte("segment: s\njourney: j\nschedule: {every: 7d, offset: 9h}"), now)
	require.NoError(t, err)
	require.Equal(t, "every 1w (offset 9h)", c.Schedule.String())
	require.Equal(t, journey.DefaultCampaignRate, c.Rate)
}

func TestCampaignMistakesAreReportedWithTheirPaths(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for doc, path := range map[string]string{
		"journey: j\nschedule: {every: 1d}":                                     "segment",
		"segment: s\nschedule: {every: 1d}":                                     "journey",
		"segment: s\njourney: j\nmessage: {template: t}\nschedule: {every: 1d}": "message",
		"segment: s\nmessage: {}\nschedule: {every: 1d}":                        "message.template",
		"segment: s\njourney: j":                                                "schedule",
		"segment: s\njourney: j\nschedule: {at: 2026-02-01T00:00:00Z}":          "schedule.at",
		"segment: s\njourney: j\nschedule: {at: tomorrow}":                      "schedule.at",
		"segment: s\njourney: j\nschedule: {every: 10m}":                        "schedule.every",
		"segment: s\njourney: j\nschedule: {every: 1d, cron: '* * * * *'}":      "schedule",
		"segment: s\njourney: j\nschedule: {cron: '0 25 * * *'}":                "schedule.cron",
		"segment: s\njourney: j\nschedule: {cron: '0 9 * * FUNDAY'}":            "schedule.cron",
		"segment: s\njourney: j\nschedule: {cron: '0 9 *'}":                     "schedule.cron",
		"segment: s\njourney: j\nschedule: {cron: '@daily', timezone: Mars}":    "schedule.timezone",
		"segment: s\njourney: j\nschedule: {every: 1d, timezone: UTC}":          "schedule.timezone",
		"segment: s\njourney: j\nschedule: {every: 1d, offset: 2d}":             "schedule.offset",
		"segment: s\njourney: j\nschedule: {every: 1d}\nrate: 0":                "rate",
		"segment: s\njourney: j\nschedule: {every: 1d}\nrate: 20000":            "rate",
		"segment: s\njourney: j\nschedule: {every: 1d}\nbatch: many":            "batch",
		"segment: s\njourney: j\nschedule: {every: 1d}\nsend: now":              "send",
		"segment: S S\njourney: j\nschedule: {every: 1d}":                       "segment",
	} {
		_, err := journey.DecodeCampaign([]byte(doc), now)
		require.Error(t, err, doc)
		ve, ok := err.(*journey.ValidationError)
		require.True(t, ok, doc)
		require.Equal(t, path, ve.Problems[0].Path, "%s: %v", doc, err)
	}
	require.NotEmpty(t, journey.CampaignIDProblem("Spring Sale"))
	require.NotEmpty(t, journey.CampaignIDProblem("a-campaign-id-that-is-far-too-long-to-have-a-message-journey-x"))
	require.Empty(t, journey.CampaignIDProblem("spring-sale"))
}
