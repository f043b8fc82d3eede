package workflows_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/workflows"
)

// scenario runs one example journey in the time-skipping environment. Conditions named in
// holds become true at the given offset, with a signal of the event they depend on.
type scenario struct {
	file   string
	events []timedEvent
	want   []string // actions taken, as their step summaries, in order
	goals  []string
	status string
}

type timedEvent struct {
	at    time.Duration
	event string
	holds string // condition (as rendered) that becomes true
}

func TestEveryExampleJourneyRuns(t *testing.T) {
	t.Parallel()
	scenarios := []scenario{
		{file: "welcome.yaml", want: []string{"add tag new-user", "send email welcome", "send email getting-started"}},
		{file: "cart-recovery.yaml",
			events: []timedEvent{{12 * time.Hour, "Order Completed", "event Order Completed since entry"}},
			want:   []string{"send email cart-reminder-1", "send email thanks-for-your-order"}, goals: []string{"purchased"}},
		{file: "cart-recovery.yaml",
			want: []string{"send email cart-reminder-1", "send email cart-reminder-2", "send email cart-last-call"}},
		{file: "browse-abandonment.yaml", want: []string{"send email still-looking", "score +2"}},
		{file: "welcome-series.yaml", want: []string{"subscribe to newsletter", "send email lead-magnet-delivery", "send email welcome-story", "send email welcome-best-of"}},
		{file: "vip-offer.yaml", want: []string{"send email standard-offer"}},
		{file: "b2b-lead-nurture.yaml",
			events: []timedEvent{{5 * 24 * time.Hour, "score_changed", "score > 50"}},
			want: []string{"score +10", "send email whitepaper-follow-up", "update lifecycle_stage",
				`create deal "Inbound lead" in sales/qualified`, "task for sales-team: Call the lead within a day", "start journey sales-handoff"}},
		{file: "b2b-lead-nurture.yaml", want: []string{"score +10", "send email whitepaper-follow-up", "send email case-studies"}},
		{file: "sales-handoff.yaml", want: []string{"add tag sales-owned", "add note", "move deal to sales/contacted"}},
		{file: "booked-call.yaml", want: []string{"send email call-confirmation", "send email call-reminder", "send email reschedule"}},
		{file: "client-onboarding.yaml", want: []string{"add tag client", "send email onboarding-welcome", "task for account-manager: Kick-off call",
			"send email onboarding-check-in", "task for account-manager: Onboarding is stuck"}},
		{file: "email-course.yaml", want: []string{"send email course-lesson", "score +1", "send email course-lesson", "score +1",
			"send email course-lesson", "score +1", "send email course-lesson", "score +1", "send email course-lesson", "score +1",
			"send email course-complete-offer"}},
		{file: "win-back.yaml", want: []string{"send email we-miss-you", "add tag lapsed", "score -10"}},
		{file: "weekly-newsletter.yaml", want: []string{"send email newsletter-question"}},
		// Renewing within two days (and paid by the time the wait looks); never paid.
		{file: "subscription-dunning.yaml",
			events: []timedEvent{{0, "object_changed", "object subscription where status = past_due, renews within next 2d"}},
			want:   []string{"send email payment-failed", "add tag renewal-at-risk"}},
		{file: "subscription-dunning.yaml",
			events: []timedEvent{{0, "object_changed", "object subscription where status = past_due"}},
			want:   []string{"send email payment-failed", "send email payment-last-notice"}},
	}
	files, err := filepath.Glob("../examples/*.yaml")
	require.NoError(t, err)
	covered := map[string]bool{}
	for _, sc := range scenarios {
		covered[sc.file] = true
		t.Run(sc.file, func(t *testing.T) {
			st, actions := runExample(t, sc)
			require.Equal(t, sc.want, actions)
			require.ElementsMatch(t, sc.goals, st.GoalsMet)
			want := sc.status
			if want == "" {
				want = contract.StatusCompleted
			}
			require.Equal(t, want, st.Status)
		})
	}
	for _, f := range files {
		require.True(t, covered[filepath.Base(f)], "%s has no scenario", f)
	}
}

func runExample(t *testing.T, sc scenario) (contract.State, []string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "examples", sc.file))
	require.NoError(t, err)
	j, err := journey.Decode(doc)
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.ContactJourney)
	env.RegisterActivity(&activities.Activities{})
	quietRecords(env)
	env.SetStartTime(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)) // a Monday

	var mu sync.Mutex
	holds := map[string]bool{}
	var actions []string
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		actions = append(actions, s)
	}
	env.OnActivity("CheckCondition", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CheckInput) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return evaluate(in.Condition, holds), nil
	})
	env.OnActivity("FirstMatch", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FirstMatchInput) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		for i, c := range in.Conditions {
			if evaluate(c, holds) {
				return i, nil
			}
		}
		return -1, nil
	})
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.AddTagInput) (activities.ActionOutput, error) {
		record("add tag " + in.Tag)
		return activities.ActionOutput{}, nil
	})
	env.OnActivity("SendEmail", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SendEmailInput) (activities.ActionOutput, error) {
		record("send email " + in.Template)
		return activities.ActionOutput{}, nil
	})
	for _, name := range []string{"RemoveTag", "UpdateFields", "AdjustScore", "Subscribe", "Unsubscribe", "CreateDeal", "MoveDeal",
		"CreateTask", "AddNote", "StartJourney", "SendSMS", "Notify", "AddToAudience", "RemoveFromAudience"} {
		env.OnActivity(name, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ActionInput) (activities.ActionOutput, error) {
			record(in.Step.Summary())
			return activities.ActionOutput{}, nil
		})
	}
	// Split tests send the contact down their last variant; best times are three hours on.
	env.OnActivity("AssignSplit", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SplitInput) (crm.SplitAssignment, error) {
		return crm.SplitAssignment{Variant: in.Test.Variants[len(in.Test.Variants)-1].ID, InTest: true}, nil
	})
	env.OnActivity("BestTime", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.BestTimeInput) (activities.ScheduleOutput, error) {
		return activities.ScheduleOutput{At: in.After.Add(3 * time.Hour), Zone: "UTC", Note: "the best time by the contact's engagement"}, nil
	})
	env.OnActivity("ScheduleWait", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ScheduleInput) (activities.ScheduleOutput, error) {
		if in.Window != nil {
			return activities.ScheduleOutput{At: in.Window.Next(in.After, time.UTC), Zone: "UTC"}, nil
		}
		// A call booked three days after entry.
		callAt := time.Date(2026, 6, 4, 15, 0, 0, 0, time.UTC)
		at, err := in.Date.Target(callAt.Format(time.RFC3339), time.UTC)
		return activities.ScheduleOutput{At: at, Zone: "UTC"}, err
	})
	for _, ev := range sc.events {
		env.RegisterDelayedCallback(func() {
			mu.Lock()
			holds[ev.holds] = true
			mu.Unlock()
			env.SignalWorkflow(contract.SignalEvent, contract.Event{Name: ev.event})
		}, ev.at)
	}
	env.ExecuteWorkflow(workflows.ContactJourney, contract.Input{Journey: *j, Version: 1, ContactID: 7})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	return st, actions
}

// evaluate answers a condition from the leaves that hold, combining all, any and not.
func evaluate(c journey.Condition, holds map[string]bool) bool {
	switch {
	case c.Not != nil:
		return !evaluate(*c.Not, holds)
	case c.All != nil:
		for _, s := range c.All {
			if !evaluate(s, holds) {
				return false
			}
		}
		return true
	case c.Any != nil:
		for _, s := range c.Any {
			if evaluate(s, holds) {
				return true
			}
		}
		return false
	}
	return holds[c.String()]
}
