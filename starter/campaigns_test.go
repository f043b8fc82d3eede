package starter_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/starter"
)

// fakeScheduler records what the campaign API asks of Temporal.
type fakeScheduler struct {
	mu      sync.Mutex
	synced  []crm.Campaign
	fired   []string
	resumed []string
	fail    error
}

func (f *fakeScheduler) Sync(_ context.Context, c crm.Campaign) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.synced = append(f.synced, c)
	return nil
}

func (f *fakeScheduler) Fire(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fired = append(f.fired, id)
	return f.fail
}

func (f *fakeScheduler) Resume(_ context.Context, firings []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumed = append(f.resumed, firings...)
	return nil
}

func campaignFixture(t *testing.T) (*fixture, *fakeScheduler) {
	t.Helper()
	f := setup(t)
	sched := &fakeScheduler{}
	api := &starter.API{DB: f.store, WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: discard(), Scheduler: sched}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	f.srv = srv
	return f, sched
}

func TestACampaignIsSavedWithItsScheduleOrNotAtAll(t *testing.T) {
	t.Parallel()
	f, sched := campaignFixture(t)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/buyers", `{"condition": {"purchased": true}}`, bearer(adminKey)).Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/spring", "id: spring\ntrigger: {manual: true}\nsteps: [{add_tag: spring}]", bearer(adminKey)).Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/templates/news", `{"subject": "News", "text": "Hello"}`, bearer(adminKey)).Status)

	r := f.do(t, "PUT", "/v1/campaigns/spring-sale", "name: Spring sale\nsegment: buyers\njourney: spring\nschedule: {every: 7d}\nrate: 300", bearer(adminKey))
	require.Equal(t, 201, r.Status, "%v", r.Body)
	require.Equal(t, "spring", r.Body["journey"])
	require.Equal(t, "every 1w", r.Body["when"])
	require.Equal(t, float64(300), r.Body["rate"])
	require.Equal(t, []any{}, r.Body["firings"])
	require.Len(t, sched.synced, 1)
	require.Equal(t, "spring-sale", sched.synced[0].ID)
	require.Equal(t, 200, f.do(t, "PUT", "/v1/campaigns/spring-sale", "segment: buyers\njourney: spring\nschedule: {cron: '0 9 * * MON'}", bearer(adminKey)).Status)

	// A single message: its journey is made with the campaign.
	r = f.do(t, "PUT", "/v1/campaigns/weekly", `{"segment": "buyers", "message": {"template": "news"}, "schedule": {"cron": "0 9 * * MON", "timezone": "Europe/Lisbon"}}`, bearer(adminKey))
	require.Equal(t, 201, r.Status, "%v", r.Body)
	require.Equal(t, "campaign.weekly", r.Body["journey"])
	require.Equal(t, 200, f.do(t, "GET", "/v1/journeys/campaign.weekly", "", bearer(adminKey)).Status)

	// Mistakes: 422 with paths, nothing saved, nothing scheduled.
	before, synced := f.count(t, "campaigns"), len(sched.synced)
	for doc, path := range map[string]string{
		"segment: nobody\njourney: spring\nschedule: {every: 1d}":                 "segment",
		"segment: buyers\njourney: nowhere\nschedule: {every: 1d}":                "journey",
		"segment: buyers\nmessage: {template: missing}\nschedule: {every: 1d}":    "message.template",
		"segment: buyers\njourney: spring\nschedule: {cron: '61 * * * *'}":        "schedule.cron",
		"segment: buyers\njourney: spring\nschedule: {at: 2020-01-01T00:00:00Z}":  "schedule.at",
		"segment: buyers\njourney: spring\nschedule: {every: 1d}\nrate: fast":     "rate",
		"segment: buyers\njourney: spring\nschedule: {every: 1d}\nsend_at: today": "send_at",
	} {
		r := f.do(t, "PUT", "/v1/campaigns/broken", doc, bearer(adminKey))
		require.Equal(t, 422, r.Status, "%s: %v", doc, r.Body)
		e := errorOf(t, r)
		require.Equal(t, "invalid_campaign", e["code"])
		require.Equal(t, path, e["problems"].([]any)[0].(map[string]any)["path"], doc)
	}
	// Every problem at once: the document's and what it names that does not exist.
	r = f.do(t, "PUT", "/v1/campaigns/broken", "segment: nobody\njourney: nowhere\nschedule: {at: 2020-01-01T00:00:00Z}", bearer(adminKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	e := errorOf(t, r)
	var paths []string
	for _, p := range e["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string))
	}
	require.ElementsMatch(t, []string{"schedule.at", "segment", "journey"}, paths)
	require.Contains(t, e["message"], "invalid campaign: ")
	r = f.do(t, "PUT", "/v1/campaigns/Bad%20Id", "segment: buyers\njourney: spring\nschedule: {every: 1d}", bearer(adminKey))
	require.Equal(t, 422, r.Status)
	require.Equal(t, "url path id", errorOf(t, r)["path"])
	require.Equal(t, before, f.count(t, "campaigns"))
	require.Equal(t, synced, len(sched.synced))

	// Temporal unreachable: nothing saved either.
	sched.fail = serviceerror.NewUnavailable("down")
	r = f.do(t, "PUT", "/v1/campaigns/later", "segment: buyers\nmessage: {template: news}\nschedule: {every: 1d}", bearer(adminKey))
	require.Equal(t, 503, r.Status, "%v", r.Body)
	require.Equal(t, "temporal_unavailable", errorOf(t, r)["code"])
	require.Equal(t, before, f.count(t, "campaigns"))
	require.Equal(t, 404, f.do(t, "GET", "/v1/journeys/campaign.later", "", bearer(adminKey)).Status, "not even its message's journey")
	sched.fail = nil

	// Pause, fire (refused while paused), resume, fire.
	r = f.do(t, "POST", "/v1/campaigns/spring-sale/pause", "", bearer(adminKey))
	require.Equal(t, 200, r.Status)
	require.Equal(t, true, r.Body["paused"])
	require.True(t, sched.synced[len(sched.synced)-1].Paused, "the schedule is paused too")
	require.Equal(t, 409, f.do(t, "POST", "/v1/campaigns/spring-sale/fire", "", bearer(adminKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/campaigns/spring-sale/resume", "", bearer(adminKey)).Status)
	require.False(t, sched.synced[len(sched.synced)-1].Paused)
	require.Equal(t, 202, f.do(t, "POST", "/v1/campaigns/spring-sale/fire", "", bearer(adminKey)).Status)
	require.Equal(t, []string{"spring-sale"}, sched.fired)
	require.Equal(t, 404, f.do(t, "POST", "/v1/campaigns/none/fire", "", bearer(adminKey)).Status)
	require.Equal(t, 404, f.do(t, "GET", "/v1/campaigns/none", "", bearer(adminKey)).Status)
}
