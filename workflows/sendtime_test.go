package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/workflows"
)

// opens records opens for a contact (made if new) at the given times, as tracking does:
// email_opened events of source tracking.
func opens(t *testing.T, db crm.DB, ext string, traits map[string]any, at ...time.Time) {
	t.Helper()
	ctx := context.Background()
	_, _, err := crm.RecordEvent(ctx, db, crm.EventInput{ExternalID: ext, Traits: traits, Name: "identify", Source: "test", OccurredAt: at[0]})
	require.NoError(t, err)
	for _, x := range at {
		_, err := db.Exec(ctx, `INSERT INTO events (contact_id, name, properties, source, occurred_at, dispatched_at)
			SELECT id, 'email_opened', '{}', 'tracking', $2, now() FROM contacts WHERE external_id = $1`, ext, x)
		require.NoError(t, err)
	}
}

// A contact who reads on Tuesday evenings in Berlin gets the email in the evening; one with no history
// of its own gets it when everyone else reads (Wednesday 07:00 in their own zones); with no
// history at all, a step's window decides.
func TestBestTimeWaitsForTheHourTheContactReads(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, berlin) // a Monday
	doc := `
id: digest
trigger: {event: e}
timezone: Europe/Berlin
steps:
  - {id: digest, send_email: {template: hi, at: best_time}}
  - {id: later, wait_for_best_time: {within: 72h, window: {days: [fri], from: "12:00", to: "13:00"}}}
  - {id: done, add_tag: done}
`
	// Ada (the contact, in Berlin) opened on Tuesday evenings these past weeks, and once on a
	// Sunday morning long ago.
	env, in, box, db := policyEnv(t, doc, nil)
	var ada []time.Time
	for w := 1; w <= 6; w++ {
		ada = append(ada, time.Date(2026, 6, 2-7*w, 19, 20, 0, 0, berlin))
	}
	ada = append(ada, time.Date(2025, 9, 7, 9, 0, 0, 0, berlin))
	opens(t, db, "ada", nil, ada...)
	env.SetStartTime(start)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, box.sent, 1)
	// Within a day of Monday 10:00 Tuesday evening is out of reach; the evening habit (the
	// hour of the day over the week) makes Monday 19:00 the best hour.
	require.Equal(t, time.Date(2026, 6, 1, 19, 0, 0, 0, berlin), box.sent[0].In(berlin).Truncate(time.Minute))
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Contains(t, st.Path[0].Outcome, "queued hi, waited for the best time by the contact's engagement (Europe/Berlin (journey))")
	// Within 72h of Monday 19:00 the window (Fridays 12:00-13:00) allows no hour: the wait
	// falls back to the window's next opening.
	require.Equal(t, "later", st.Path[1].Step)
	require.Equal(t, time.Date(2026, 6, 5, 12, 0, 0, 0, berlin), st.Path[1].LeftAt.In(berlin).Truncate(time.Minute))

	// Bo has no history; 60 New Yorkers and Tokyoites read at 07:00 on Wednesdays, their time.
	env, in, box, db = policyEnv(t, doc, nil)
	ny, _ := time.LoadLocation("America/New_York")
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	for i := range 60 {
		loc, zone := ny, "America/New_York"
		if i%2 == 1 {
			loc, zone = tokyo, "Asia/Tokyo"
		}
		opens(t, db, fmt.Sprintf("p%d", i), map[string]any{"timezone": zone}, time.Date(2026, 5, 27, 7, 5, 0, 0, loc))
	}
	env.SetStartTime(time.Date(2026, 6, 2, 10, 0, 0, 0, berlin)) // Tuesday
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, box.sent, 1)
	require.Equal(t, time.Date(2026, 6, 3, 7, 0, 0, 0, berlin), box.sent[0].In(berlin).Truncate(time.Minute), "Wednesday 07:00 in Ada's zone")
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Contains(t, st.Path[0].Outcome, "population's engagement")

	// Nobody has any history: the send goes at once, the wait until the window opens.
	env, in, box, _ = policyEnv(t, doc, nil)
	env.SetStartTime(start)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, box.sent, 1)
	require.Less(t, box.sent[0].Sub(start), time.Minute)
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Contains(t, st.Path[1].Outcome, "the window's next opening (no learned hour fits)")
	require.Equal(t, time.Date(2026, 6, 5, 12, 0, 0, 0, berlin), st.Path[1].LeftAt.In(berlin).Truncate(time.Minute), "Friday noon")
}
