package workflows_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/workflows"
)

// envClock is the test environment's clock: activities see the skipped time as the
// workflow does.
type envClock struct {
	env *testsuite.TestWorkflowEnvironment
}

func (c envClock) Now() time.Time { return c.env.Now() }

// outbox records when each message was handed over, in the environment's time.
type outbox struct {
	env  *testsuite.TestWorkflowEnvironment
	mu   sync.Mutex
	sent []time.Time
}

func (o *outbox) Send(context.Context, email.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent = append(o.sent, o.env.Now())
	return nil
}

// policyEnv is a time-skipping environment whose activities are the real ones over a real
// PostgreSQL, with one contact (who has no time zone of their own) and the template hi.
func policyEnv(t *testing.T, doc string, defaults *journey.Policy) (*testsuite.TestWorkflowEnvironment, contract.Input, *outbox, crm.DB) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	_, err := crm.PutTemplate(ctx, pool, email.Template{ID: "hi", Subject: "Hi", Text: "Hello"})
	require.NoError(t, err)
	_, _, err = crm.RecordEvent(ctx, pool, crm.EventInput{ExternalID: "ada", Traits: map[string]any{"email": "ada@example.com"},
		Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	c, err := crm.ContactByExternalID(ctx, pool, "ada")
	require.NoError(t, err)

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.ContactJourney)
	box := &outbox{env: env}
	env.RegisterActivity(&activities.Activities{DB: pool, Clock: envClock{env}, Policy: defaults, Mail: &activities.Mail{
		Sender: box, Tracker: email.Tracker{Signer: email.Signer{Key: []byte("k")}, BaseURL: "https://t.example.com"}, Domain: "example.com"}})
	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	_, _, err = crm.ApplyJourney(ctx, pool, j, doc)
	require.NoError(t, err)
	return env, contract.Input{Journey: *j, Version: 1, ContactID: c.ID}, box, pool
}

// A send that would break the cap waits on a timer until the cap has room, and then until
// the quiet hours end; the state says by which rule and until when. The night the clocks
// change in New York, 24 hours after 20:00 EST is 21:00 EDT: quiet, so the send goes at 08:00.
// A step with if_capped: skip goes on without its send; a transactional one is not held.
func TestACappedSendIsDeferredUntilAllowedNeverDropped(t *testing.T) {
	t.Parallel()
	env, in, box, db := policyEnv(t, `
id: nudges
trigger: {event: e}
timezone: America/New_York
policy:
  email: {caps: [{max: 1, per: 24h}], quiet_hours: {from: "21:00", to: "08:00"}}
steps:
  - {id: first, send_email: {template: hi}}
  - {id: second, send_email: {template: hi}}
  - {id: third, send_email: {template: hi, if_capped: skip}}
  - {id: receipt, send_email: {template: hi, transactional: true}}
`, nil)
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	env.SetStartTime(time.Date(2026, 3, 7, 20, 0, 0, 0, ny)) // Saturday 20:00 EST, 01:00 UTC Sunday
	var deferred contract.State
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(contract.QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&deferred))
	}, time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())

	require.Equal(t, contract.StatusWaiting, deferred.Status)
	require.Equal(t, "second", deferred.CurrentStep)
	require.Equal(t, "deferred by cap 1 per 1d until 2026-03-09 12:00:00 UTC", deferred.WaitingFor)
	require.Equal(t, "send policy", deferred.Next.On)

	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Len(t, box.sent, 3, "first, second (deferred) and the receipt; third skipped")
	require.Equal(t, time.Date(2026, 3, 8, 1, 0, 0, 0, time.UTC), box.sent[0].UTC().Truncate(time.Minute))
	require.Equal(t, time.Date(2026, 3, 9, 8, 0, 0, 0, ny), box.sent[1].In(ny).Truncate(time.Minute), "08:00 EDT, the morning after the cap frees in quiet hours")
	require.Equal(t, box.sent[1].Truncate(time.Minute), box.sent[2].Truncate(time.Minute), "the receipt is not held")
	require.Equal(t, "queued hi (deferred once)", st.Path[1].Outcome)
	require.Contains(t, st.Path[2].Outcome, "skipped by cap 1 per 1d")

	stats, err := crm.Stats(context.Background(), db, "nudges")
	require.NoError(t, err)
	require.Equal(t, []crm.PolicyStats{
		{Step: "second", Channel: "email", Rule: "cap 1 per 1d", Deferred: 1},
		{Step: "third", Channel: "email", Rule: "cap 1 per 1d", Skipped: 1},
	}, stats.SendPolicy)
}

// The worker's defaults hold a journey without a policy of its own; a journey's caps: []
// turns them off for its sends.
func TestTheWorkersDefaultPolicyHoldsJourneysThatSetNone(t *testing.T) {
	t.Parallel()
	quiet, err := journey.ParseQuietHours("21:00-08:00")
	require.NoError(t, err)
	defaults := &journey.Policy{Email: &journey.ChannelPolicy{QuietHours: quiet}}
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	// Saturday 24 October 2026, 23:30 in Berlin; the clocks go back that night.
	start := time.Date(2026, 10, 24, 23, 30, 0, 0, berlin)

	env, in, box, _ := policyEnv(t, "id: late\ntrigger: {event: e}\ntimezone: Europe/Berlin\nsteps: [{send_email: {template: hi}}]", defaults)
	env.SetStartTime(start)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, box.sent, 1)
	require.Equal(t, time.Date(2026, 10, 25, 8, 0, 0, 0, berlin), box.sent[0].In(berlin).Truncate(time.Minute), "08:00 CET")
	require.Equal(t, 9*time.Hour+30*time.Minute, box.sent[0].Sub(start).Truncate(time.Minute), "the night the clocks go back is an hour longer")

	env, in, box, _ = policyEnv(t, "id: off\ntrigger: {event: e}\ntimezone: Europe/Berlin\npolicy: {email: {quiet_hours: off}}\nsteps: [{send_email: {template: hi}}]", defaults)
	env.SetStartTime(start)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, box.sent, 1)
	require.Less(t, box.sent[0].Sub(start), time.Minute, "the journey turned quiet hours off")
}

// racers starts every run, as children, and waits for them all. They start in waves of 500 a
// second apart, because the test environment stalls with about a thousand callbacks pending;
// the five runs of a contact are in one wave, so they race each other at the same instant.
func racers(ctx workflow.Context, ins []contract.Input) error {
	futures := make([]workflow.ChildWorkflowFuture, len(ins))
	for i, in := range ins {
		if i > 0 && i%500 == 0 {
			if err := workflow.Sleep(ctx, time.Second); err != nil {
				return err
			}
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: contract.WorkflowID(in.Journey.ID, in.ContactID)})
		futures[i] = workflow.ExecuteChildWorkflow(cctx, workflows.ContactJourney, in)
	}
	for _, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// Five journeys start for 200 contacts at the same instant, in virtual time, each emailing
// at once under the worker's caps (2 a day, 3 a week) and quiet hours (21:00-08:00 in New
// York): every email goes out in the end, once, through durable timers, and no contact gets
// more than a cap allows in any window, nor anything in quiet hours.
func TestFiveJourneysRacingForTwoHundredContactsKeepTheCapsInVirtualTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	_, err := crm.PutTemplate(ctx, pool, email.Template{ID: "hi", Subject: "Hi", Text: "Hello"})
	require.NoError(t, err)
	const contacts, journeys = 200, 5
	_, err = pool.Exec(ctx, `INSERT INTO contacts (external_id, email) SELECT 'c' || n, 'c' || n || '@example.com' FROM generate_series(1, $1) n`, contacts)
	require.NoError(t, err)
	var ins []contract.Input
	for k := range journeys {
		doc := fmt.Sprintf("id: j%d\ntrigger: {event: e}\ntimezone: America/New_York\nsteps: [{id: news, send_email: {template: hi}}]", k)
		j, err := journey.Decode([]byte(doc))
		require.NoError(t, err)
		_, _, err = crm.ApplyJourney(ctx, pool, j, doc)
		require.NoError(t, err)
		for id := int64(1); id <= contacts; id++ {
			ins = append(ins, contract.Input{Journey: *j, Version: 1, ContactID: id})
		}
	}
	// A contact's five runs side by side.
	slices.SortStableFunc(ins, func(a, b contract.Input) int { return cmp.Compare(a.ContactID, b.ContactID) })
	caps, err := journey.ParseCaps("2/24h,3/7d")
	require.NoError(t, err)
	quiet, err := journey.ParseQuietHours("21:00-08:00")
	require.NoError(t, err)
	policy := &journey.Policy{Email: &journey.ChannelPolicy{Caps: caps, QuietHours: quiet}}

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(5 * time.Minute)
	env.RegisterWorkflow(workflows.ContactJourney)
	env.RegisterWorkflow(racers)
	box := &outbox{env: env}
	env.RegisterActivity(&activities.Activities{DB: pool, Clock: envClock{env}, Policy: policy, Mail: &activities.Mail{
		Sender: box, Tracker: email.Tracker{Signer: email.Signer{Key: []byte("k")}, BaseURL: "https://t.example.com"}, Domain: "example.com"}})
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	env.SetStartTime(time.Date(2026, 3, 6, 18, 0, 0, 0, ny)) // a Friday evening, DST starts on Sunday
	env.ExecuteWorkflow(racers, ins)
	require.NoError(t, env.GetWorkflowError())

	require.Len(t, box.sent, contacts*journeys, "every email went out, once")
	rows, err := pool.Query(ctx, `SELECT contact_id, array_agg(reserved_at ORDER BY reserved_at) FROM send_reservations GROUP BY contact_id`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var id int64
		var at []time.Time
		require.NoError(t, rows.Scan(&id, &at))
		n++
		require.Len(t, at, journeys)
		for _, c := range caps {
			for i := 0; i+c.Max < len(at); i++ {
				require.GreaterOrEqual(t, at[i+c.Max].Sub(at[i]), c.Per.D, "contact %d breaks %s: %v", id, c, at)
			}
		}
		for _, x := range at {
			_, inQuiet := quiet.End(x, ny)
			require.False(t, inQuiet, "contact %d got an email at %s", id, x.In(ny))
		}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, contacts, n)
	var deferred int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(DISTINCT idempotency_key) FROM send_deferrals`).Scan(&deferred))
	require.Equal(t, 3*contacts, deferred, "three of each contact's five were deferred")
}

// A migration offered while a send is deferred does not move the run from the send (it would
// drop it): the run moves at its next wait, once the send has gone out.
func TestAMigrationWaitsForADeferredSend(t *testing.T) {
	t.Parallel()
	v1 := `
id: moving
trigger: {event: e}
policy: {email: {caps: [{max: 1, per: 1d}]}}
steps:
  - {id: first, send_email: {template: hi}}
  - {id: second, send_email: {template: hi}}
  - {id: pause, wait: 5d}
`
	env, in, box, _ := policyEnv(t, v1, nil)
	start := env.Now()
	m := contract.Migration{ID: 3, From: 1, To: 2, Journey: decodeJourney(t, strings.Replace(v1, "wait: 5d", "wait: 6d", 1)),
		Map: map[string]string{"second": "second", "pause": "pause"}}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalMigrate, m) }, time.Hour)
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	next := continuedAs(t, env.GetWorkflowError())
	require.Len(t, box.sent, 2, "the deferred send went out before the run moved")
	require.WithinDuration(t, start.Add(24*time.Hour), box.sent[1], time.Minute)
	require.Equal(t, "pause", next.Resume.Step)
	require.Equal(t, 2, next.Version)
}
