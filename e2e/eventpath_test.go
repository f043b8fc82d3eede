package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/starter"
)

// TestAFieldWaitHearsEveryKindOfChangeWithinASecond is the field-wait reproduction: a contact
// waiting for plan = pro moves on when plan changes through an identify, through a track's
// context traits, and through another journey's update_fields — each within a second.
func TestAFieldWaitHearsEveryKindOfChangeWithinASecond(t *testing.T) {
	s := setup(t)
	s.apply(t, "upgrade", `
id: upgrade
trigger: {event: Trial Started}
steps:
  - id: upgraded?
    wait_until: {condition: {field: plan, equals: pro}, timeout: 1h}
    then: [{add_tag: upgraded}]
    else: [{add_tag: not-upgraded}]
`)
	s.apply(t, "sales-call", `
id: sales-call
trigger: {event: Call Won}
steps: [{update_fields: {plan: pro}}]
`)
	change := map[string]string{
		"via-identify": `{"userId":"%s","traits":{"plan":"pro"}}`,
		"via-context":  `{"userId":"%s","event":"Pricing Viewed","context":{"traits":{"plan":"pro"}}}`,
		"via-journey":  `{"userId":"%s","event":"Call Won"}`,
	}
	for who, body := range change {
		s.track(t, fmt.Sprintf(`{"userId":"%s","event":"Trial Started"}`, who))
		wf := contract.WorkflowID("upgrade", s.contact(t, who))
		require.Eventually(t, func() bool { return s.state(t, wf).CurrentStep == "upgraded?" }, 10*time.Second, 20*time.Millisecond)
		path := "/v1/track"
		if who == "via-identify" {
			path = "/v1/identify"
		}
		sent := time.Now()
		status, reply := s.call(t, "POST", path, fmt.Sprintf(body, who), asWriter)
		require.Equal(t, 200, status, reply)
		require.Eventually(t, func() bool {
			return s.count(t, `SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag = 'upgraded'`, s.contact(t, who)) == 1
		}, 5*time.Second, 10*time.Millisecond, who)
		took := time.Since(sent)
		t.Logf("%s: then path taken %s after the change was accepted", who, took.Round(time.Millisecond))
		require.Less(t, took, time.Second, who)
		s.finished(t, wf)
		recordHistory(t, s, wf, "field-wait-"+who)
	}
}

// TestAPoisonedJourneyIsDeadLetteredAndSlowsNoOtherContact: a journey whose entry condition
// cannot be evaluated fails every dispatch of its trigger. Its event is dead-lettered after
// the configured attempts with the error; everyone else's events go on meanwhile; once the
// journey is fixed, retrying the event starts the run.
func TestAPoisonedJourneyIsDeadLetteredAndSlowsNoOtherContact(t *testing.T) {
	s := setup(t)
	s.apply(t, "ok", "id: ok\ntrigger: {event: Hello}\nsteps: [{add_tag: greeted}]")
	// Stored directly, as a version accepted before documents were checked as they are now
	// would be: its entry condition cannot be evaluated, so every dispatch of its trigger fails.
	bad := journey.Condition{Field: &journey.FieldTest{Name: "plan", Op: "resembles", Value: "pro"}}
	poison := &journey.Journey{ID: "poison", Triggers: []journey.Trigger{{Kind: "event", Event: "Poke"}},
		Entry: &bad, Reentry: journey.Reentry{Mode: journey.ReentryAlways}, Steps: []journey.Step{{ID: "tag", AddTag: "poisoned"}}}
	_, _, err := crm.ApplyJourney(s.ctx, s.db, poison, "poison")
	require.NoError(t, err)

	s.track(t, `{"userId":"victim","event":"Poke"}`)
	s.track(t, `{"userId":"victim","event":"Hello"}`)
	for i := range 20 {
		s.track(t, fmt.Sprintf(`{"userId":"other-%d","event":"Hello"}`, i))
	}
	for i := range 20 {
		require.Eventually(t, func() bool {
			return s.count(t, `SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag = 'greeted'`, s.contact(t, fmt.Sprintf("other-%d", i))) == 1
		}, 20*time.Second, 20*time.Millisecond)
	}
	// Dead-lettered after 3 attempts (the e2e starter's setting), with its error.
	var listed struct {
		Events []crm.FailedEvent `json:"events"`
	}
	require.Eventually(t, func() bool {
		status, body := s.call(t, "GET", "/v1/events?status=failed", "", asAdmin)
		require.Equal(t, 200, status, body)
		require.NoError(t, json.Unmarshal([]byte(body), &listed))
		return len(listed.Events) == 1
	}, 20*time.Second, 50*time.Millisecond)
	failed := listed.Events[0]
	require.Equal(t, "Poke", failed.Name)
	require.Equal(t, "victim", failed.ExternalID)
	require.Equal(t, 3, failed.Attempts)
	require.Contains(t, failed.LastError, "entry condition of poison")
	status, body := s.call(t, "GET", "/v1/events?status=pending", "", asAdmin)
	require.Equal(t, 400, status, body)

	// Fixed, then retried: the event is dispatched and starts the journey.
	// The victim's own later event was not held up for good behind it.
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag = 'greeted'`, s.contact(t, "victim")) == 1
	}, 10*time.Second, 20*time.Millisecond)
	s.apply(t, "poison", "id: poison\ntrigger: {event: Poke}\nsteps: [{add_tag: poisoned}]")
	status, body = s.call(t, "POST", fmt.Sprintf("/v1/events/%d/retry", failed.ID), "", asAdmin)
	require.Equal(t, 202, status, body)
	status, body = s.call(t, "POST", fmt.Sprintf("/v1/events/%d/retry", failed.ID), "", asAdmin)
	require.Contains(t, []int{202, 409}, status, body)
	victim := s.contact(t, "victim")
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag IN ('poisoned', 'greeted')`, victim) == 2
	}, 20*time.Second, 50*time.Millisecond)
	status, body = s.call(t, "POST", "/v1/events/999999/retry", "", asAdmin)
	require.Equal(t, 404, status, body)
}

// TestAContactsRunsAreListedAndFindableByEveryIDItHad: an anonymous visitor enters a journey,
// then becomes a user through alias; the run is found by both ids in Temporal and listed on
// the contact's profile with its step and a Temporal UI link.
func TestAContactsRunsAreListedAndFindableByEveryIDItHad(t *testing.T) {
	s := setup(t)
	s.apply(t, "browse", `
id: browse
trigger: {event: Product Viewed}
steps: [{id: linger, wait: 1h}]
`)
	status, body := s.call(t, "POST", "/v1/track", `{"anonymousId":"v-77","event":"Product Viewed"}`, asWriter)
	require.Equal(t, 200, status, body)
	s.find(t, "CairnContact='anon:v-77'")
	status, body = s.call(t, "POST", "/v1/alias", `{"userId":"zoe","previousId":"v-77"}`, asWriter)
	require.Equal(t, 200, status, body)
	// The open run hears the alias and is findable by either id.
	s.find(t, "CairnContactIDs='zoe' AND CairnContactIDs='anon:v-77' AND CairnContact='zoe'")

	var profile struct {
		Contact crm.Contact `json:"contact"`
		Runs    []struct {
			Journey     string `json:"journey"`
			Version     int    `json:"version"`
			Status      string `json:"status"`
			CurrentStep string `json:"current_step"`
			TemporalUI  string `json:"temporal_ui"`
		} `json:"runs"`
	}
	for _, id := range []string{"zoe", "anon:v-77"} {
		status, body = s.call(t, "GET", "/v1/contacts/"+id, "", asAdmin)
		require.Equal(t, 200, status, body)
		require.NoError(t, json.Unmarshal([]byte(body), &profile))
		require.Equal(t, "zoe", profile.Contact.ExternalID)
		require.Equal(t, []string{"anon:v-77"}, profile.Contact.Aliases)
		require.Len(t, profile.Runs, 1, body)
		r := profile.Runs[0]
		require.Equal(t, "browse", r.Journey)
		require.Equal(t, 1, r.Version)
		require.Equal(t, "running", r.Status)
		require.Equal(t, "linger", r.CurrentStep)
		require.True(t, strings.HasPrefix(r.TemporalUI, "http://temporal-ui.test/namespaces/default/workflows/journey:browse:"), "%q", r.TemporalUI)
	}
	recordHistory(t, s, contract.WorkflowID("browse", profile.Contact.ID), "alias-event-path")
}

// TestAnEndedRunClosesItsEnrollmentWhetherItFailedOrWasTerminated: a failed run records its
// end itself; a terminated one (no code runs) is closed by the dispatcher's check of runs the
// CRM still records as open. Either way {in_journey: J} stops holding.
func TestAnEndedRunClosesItsEnrollmentWhetherItFailedOrWasTerminated(t *testing.T) {
	s := setup(t)
	// An email to a contact without an address fails the run (a refusal, not a delivery that
	// is not ready yet).
	s.template(t, "fails-hello", "https://example.com/")
	s.apply(t, "fails", "id: fails\ntrigger: {event: Ping}\nsteps: [{send_email: {template: fails-hello}}]")
	s.apply(t, "parks", "id: parks\ntrigger: {event: Ping}\nsteps: [{wait: 1h}]")
	s.track(t, `{"userId":"nia","event":"Ping"}`)
	nia := s.contact(t, "nia")
	open := func(journeyID string) int {
		return s.count(t, `SELECT count(*) FROM enrollments WHERE journey_id = $1 AND contact_id = $2 AND ended_at IS NULL`, journeyID, nia)
	}
	inJourney := func(journeyID string) bool {
		ok, err := crm.Matches(s.ctx, s.db, nia, journey.Condition{InJourney: journeyID}, crm.Env{Now: time.Now()})
		require.NoError(t, err)
		return ok
	}
	require.Eventually(t, func() bool { return s.count(t, `SELECT count(*) FROM enrollments WHERE contact_id = $1`, nia) == 2 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return open("fails") == 0 }, 20*time.Second, 50*time.Millisecond, "the failed run closed its enrollment")
	require.False(t, inJourney("fails"))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE name = 'journey_failed' AND contact_id = $1`, nia))

	require.True(t, inJourney("parks"))
	require.NoError(t, s.temporal.TerminateWorkflow(s.ctx, contract.WorkflowID("parks", nia), "", "by hand"))
	d := &starter.Dispatcher{DB: s.db, Temporal: s.temporal, Logger: quiet()}
	n, err := d.RepairEnrollments(s.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the one enrollment still open is checked")
	require.Zero(t, open("parks"))
	require.False(t, inJourney("parks"))
}
