package simulation_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/object"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/simulation"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// examplesCRM is a CRM holding every example journey, template and object type, as dev
// applies them.
func examplesCRM(t *testing.T) (context.Context, *pgxpool.Pool, map[string]*journey.Journey) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	templates, err := email.ReadTemplateDir("../examples/templates")
	require.NoError(t, err)
	for _, tpl := range templates {
		_, err := crm.PutTemplate(ctx, pool, tpl)
		require.NoError(t, err)
	}
	objects, err := filepath.Glob("../examples/objects/*.yaml")
	require.NoError(t, err)
	for _, f := range objects {
		doc, err := os.ReadFile(f)
		require.NoError(t, err)
		typ, err := object.Decode(strings.TrimSuffix(filepath.Base(f), ".yaml"), doc)
		require.NoError(t, err)
		_, err = crm.PutObjectType(ctx, pool, typ, string(doc))
		require.NoError(t, err)
	}
	files, err := filepath.Glob("../examples/*.yaml")
	require.NoError(t, err)
	journeys := map[string]*journey.Journey{}
	for _, f := range files {
		doc, err := os.ReadFile(f)
		require.NoError(t, err)
		j, err := journey.Decode(doc)
		require.NoError(t, err)
		_, _, err = crm.ApplyJourney(ctx, pool, j, string(doc))
		require.NoError(t, err)
		journeys[j.ID] = j
	}
	return ctx, pool, journeys
}

func rows(t *testing.T, ctx context.Context, pool *pgxpool.Pool) string {
	t.Helper()
	var out string
	require.NoError(t, pool.QueryRow(ctx, `SELECT concat_ws(',', (SELECT count(*) FROM contacts), (SELECT count(*) FROM events),
		(SELECT count(*) FROM email_messages), (SELECT count(*) FROM action_ledger), (SELECT count(*) FROM deals),
		(SELECT count(*) FROM journey_entries), (SELECT count(*) FROM pg_namespace))`).Scan(&out))
	return out
}

// Every example journey simulates, in virtual time, each in under 2 s of real time: the path
// with its times, every message rendered, the goals met and where the run ended, and nothing
// written to the CRM.
func TestEveryExampleJourneySimulatesInVirtualTime(t *testing.T) {
	ctx, pool, journeys := examplesCRM(t)
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC) // a Monday
	contact := simulation.Contact{ID: "ada", Email: "ada@example.com",
		Traits: map[string]any{"first_name": "Ada", "call_at": start.Add(5 * 24 * time.Hour).Format(time.RFC3339)}}
	cases := []struct {
		journey  string
		events   []simulation.Event
		status   string
		emails   []string // templates' subjects are checked to be rendered; these are the steps
		goals    []string
		atLeast  time.Duration // virtual time the run takes at least
		lastStep string
	}{
		{journey: "welcome", status: "completed", atLeast: 2 * time.Minute},
		{journey: "cart-recovery", status: "completed", goals: []string{"purchased"},
			events:   []simulation.Event{{At: journey.Duration{D: 12 * time.Hour}, Name: "Order Completed", Properties: map[string]any{"order_id": "o-1", "total": 40}}},
			lastStep: "thank-you"},
		{journey: "cart-recovery", status: "completed", atLeast: 6 * 24 * time.Hour},
		{journey: "browse-abandonment", status: "completed", atLeast: 2 * time.Hour},
		{journey: "welcome-series", status: "completed", atLeast: 3 * 24 * time.Hour,
			events: []simulation.Event{{At: journey.Duration{D: time.Hour}, Name: "email_opened", Properties: map[string]any{"template": "lead-magnet-delivery"}}}},
		{journey: "vip-offer", status: "completed", atLeast: 3 * 24 * time.Hour},
		{journey: "b2b-lead-nurture", status: "completed", atLeast: 30 * 24 * time.Hour},
		{journey: "sales-handoff", status: "failed"}, // no open deal to move: the simulation says so
		{journey: "booked-call", status: "completed", atLeast: 4 * 24 * time.Hour},
		{journey: "client-onboarding", status: "completed", atLeast: 21 * 24 * time.Hour},
		{journey: "email-course", status: "completed", atLeast: 4 * 24 * time.Hour},
		{journey: "win-back", status: "completed", atLeast: 90 * 24 * time.Hour},
		{journey: "weekly-newsletter", status: "completed"},
		// The trigger writes the subscription record; nobody pays, so the last notice goes out.
		{journey: "subscription-dunning", status: "completed", atLeast: 3 * 24 * time.Hour, lastStep: "last-notice"},
	}
	simulated := map[string]bool{}
	for _, c := range cases {
		before := rows(t, ctx, pool)
		res, err := simulation.Run(ctx, pool, simulation.Input{Journey: *journeys[c.journey], Contact: contact, Events: c.events, Start: start})
		require.NoError(t, err, c.journey)
		require.Equal(t, before, rows(t, ctx, pool), "%s: the CRM is untouched", c.journey)
		require.Less(t, res.Took, 2*time.Second, "%s took %s", c.journey, res.Took)
		require.True(t, res.Entered, c.journey)
		require.Equal(t, c.status, res.Status, "%s: %s", c.journey, res.Error)
		require.NotEmpty(t, res.Path, c.journey)
		require.Equal(t, start, res.Path[0].EnteredAt.UTC(), "%s: virtual times from the start", c.journey)
		require.GreaterOrEqual(t, res.EndedAt.Sub(start), c.atLeast, c.journey)
		if c.goals != nil {
			require.Equal(t, c.goals, res.GoalsMet, c.journey)
		}
		if c.lastStep != "" {
			require.Equal(t, c.lastStep, res.Step, c.journey)
		}
		sends := 0
		for _, v := range res.Path {
			if v.Kind == journey.KindSendEmail && strings.HasPrefix(v.Outcome, "queued") {
				sends++
			}
		}
		require.Len(t, res.Messages, sends, "%s: one message per email step taken", c.journey)
		for _, m := range res.Messages {
			require.Equal(t, "ada@example.com", m.To)
			require.NotEmpty(t, m.Subject)
			require.NotContains(t, m.Subject+m.Text, "{{", "rendered")
			require.Contains(t, m.Text, "https://simulation.invalid/v1/t/u/", "with its unsubscribe link, pointing nowhere")
			require.NotEmpty(t, m.Step)
			require.False(t, m.At.Before(start))
		}
		t.Logf("%-20s %-9s %3d steps, %d messages, %7.1f virtual days in %s", c.journey, res.Status, len(res.Path), len(res.Messages),
			res.EndedAt.Sub(start).Hours()/24, res.Took.Round(time.Millisecond))
		simulated[c.journey] = true
	}
	require.Len(t, simulated, len(journeys), "every example")
}

// Events happen at their times and reach the run as the dispatcher would bring them; a
// contact the entry condition keeps out does not enter; a wait that never ends stops at the
// horizon.
func TestSimulatedEventsEntryAndHorizon(t *testing.T) {
	ctx, pool, journeys := examplesCRM(t)
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	res, err := simulation.Run(ctx, pool, simulation.Input{Journey: *journeys["cart-recovery"], Start: start,
		Contact: simulation.Contact{Email: "bo@example.com"},
		Events:  []simulation.Event{{At: journey.Duration{D: 26 * time.Hour}, Name: "email_opened", Properties: map[string]any{"template": "cart-reminder-1"}}}})
	require.NoError(t, err)
	var opened contract.Visit
	for _, v := range res.Path {
		if v.Step == "opened?" {
			opened = v
		}
	}
	require.Equal(t, "condition met", opened.Outcome)
	require.Equal(t, start.Add(26*time.Hour), opened.LeftAt.UTC(), "the open at 26h ends the wait then")
	require.NotEmpty(t, res.Heard)

	res, err = simulation.Run(ctx, pool, simulation.Input{Journey: *journeys["browse-abandonment"], Start: start,
		Contact: simulation.Contact{Email: "cy@example.com"},
		Events:  nil})
	require.NoError(t, err)
	require.True(t, res.Entered)

	j, err := journey.Decode([]byte("id: forever\ntrigger: {event: A}\nentry: {tag: vip}\nsteps: [{wait_until: {condition: {tag: never}}}]"))
	require.NoError(t, err)
	res, err = simulation.Run(ctx, pool, simulation.Input{Journey: *j, Start: start, Contact: simulation.Contact{ID: "dee"}})
	require.NoError(t, err)
	require.False(t, res.Entered)
	require.Contains(t, res.Error, "entry condition")
	res, err = simulation.Run(ctx, pool, simulation.Input{Journey: *j, Start: start, Contact: simulation.Contact{ID: "dee", Tags: []string{"vip"}},
		Horizon: 30 * 24 * time.Hour})
	require.NoError(t, err)
	require.Equal(t, simulation.StatusStopped, res.Status)
	require.Equal(t, start.Add(30*24*time.Hour), res.EndedAt.UTC())
}
