package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/workflows"
)

func TestWindowWaitSleepsUntilTheWindowOpensInTheContactsZone(t *testing.T) {
	t.Parallel()
	env, in := setup(t, `
id: office
trigger: {event: e}
steps:
  - {id: office-hours, wait_for_window: {days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00"}}
  - {add_tag: called}
`)
	lisbon, err := time.LoadLocation("Europe/Lisbon")
	require.NoError(t, err)
	// Friday 27 March 2026, 18:00 Lisbon; the clocks go forward that weekend.
	start := time.Date(2026, 3, 27, 18, 0, 0, 0, lisbon)
	env.SetStartTime(start)
	// The activity's computation is the real one (journey.Window.Next) in the contact's zone.
	env.OnActivity("ScheduleWait", mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ScheduleInput) (activities.ScheduleOutput, error) {
		return activities.ScheduleOutput{At: in.Window.Next(in.After, lisbon), Zone: "Europe/Lisbon (contact)"}, nil
	})
	var taggedAt time.Time
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(func(context.Context, activities.AddTagInput) (activities.ActionOutput, error) {
		taggedAt = env.Now()
		return activities.ActionOutput{}, nil
	})
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, time.Date(2026, 3, 30, 8, 0, 0, 0, time.UTC), taggedAt.UTC(), "Monday 09:00 in Lisbon, summer time")
}

func TestDateWaitInThePastLetsTheContactThroughAtOnce(t *testing.T) {
	t.Parallel()
	env, in := setup(t, "id: j\ntrigger: {event: e}\nsteps: [{wait_until_date: {date: 2000-01-01}}, {add_tag: x}]")
	env.OnActivity("ScheduleWait", mock.Anything, mock.Anything).Return(activities.ScheduleOutput{At: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Note: "until 2000-01-01"}, nil)
	env.OnActivity("AddTag", mock.Anything, mock.Anything).Return(activities.ActionOutput{}, nil)
	started := env.Now()
	env.ExecuteWorkflow(workflows.ContactJourney, in)
	require.NoError(t, env.GetWorkflowError())
	var st contract.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Contains(t, st.Path[0].Outcome, "no wait")
	require.Less(t, env.Now().Sub(started), time.Minute)
}
