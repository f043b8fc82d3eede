package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/journey"
)

// a is only used for method names in ExecuteActivity; the worker registers the real struct.
var a *activities.Activities

// ContactJourney walks one contact through one pinned journey version.
func ContactJourney(ctx workflow.Context, in Input) (State, error) {
	it := &interpreter{in: in, visits: map[string]int{}}
	if err := it.setup(ctx); err != nil {
		return it.state, err
	}
	err := it.run(ctx)
	return it.state, err
}

type interpreter struct {
	in     Input
	state  State
	visits map[string]int // step id → times entered, for idempotency keys of loops
}

// setup registers the query and signal handlers and sets the search attributes.
func (it *interpreter) setup(ctx workflow.Context) error {
	it.state = State{
		JourneyID: it.in.Journey.ID,
		Version:   it.in.Version,
		ContactID: it.in.ContactID,
		Status:    StatusRunning,
		Path:      []Visit{},
		GoalsMet:  []string{},
		Events:    []Event{},
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return it.state, nil }); err != nil {
		return fmt.Errorf("register %s query: %w", QueryState, err)
	}
	events := workflow.GetSignalChannel(ctx, SignalEvent)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var ev Event
			events.Receive(ctx, &ev)
			it.record(ev)
		}
	})
	// The starter sets these at start too; upserting keeps runs started by other means
	// (a Temporal CLI start, a schedule) searchable the same way.
	return workflow.UpsertTypedSearchAttributes(ctx,
		AttrJourney.ValueSet(it.in.Journey.ID),
		AttrContact.ValueSet(fmt.Sprint(it.in.ContactID)),
		AttrJourneyVersion.ValueSet(int64(it.in.Version)),
	)
}

func (it *interpreter) record(ev Event) {
	it.state.Events = append(it.state.Events, ev)
	if n := len(it.state.Events); n > maxEventsKept {
		it.state.Events = it.state.Events[n-maxEventsKept:]
	}
}

func (it *interpreter) run(ctx workflow.Context) error {
	for _, step := range it.in.Journey.Steps {
		if err := it.enter(ctx, step); err != nil {
			return err
		}
		outcome, err := it.do(ctx, step)
		it.leave(ctx, outcome, err)
		if err != nil {
			it.state.Status = StatusFailed
			it.state.Error = fmt.Sprintf("step %s: %v", step.ID, err)
			return fmt.Errorf("step %s (%s): %w", step.ID, step.Summary(), err)
		}
		if step.Kind() == journey.KindEnd {
			break
		}
	}
	it.state.Status = StatusCompleted
	it.state.CurrentStep = StepEnded
	return workflow.UpsertTypedSearchAttributes(ctx, AttrStep.ValueSet(StepEnded))
}

func (it *interpreter) enter(ctx workflow.Context, step journey.Step) error {
	it.visits[step.ID]++
	it.state.CurrentStep = step.ID
	it.state.Status = StatusRunning
	it.state.Path = append(it.state.Path, Visit{
		Step: step.ID, Kind: step.Kind(), Summary: step.Summary(), EnteredAt: workflow.Now(ctx),
	})
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("at step **%s**: %s", step.ID, step.Summary()))
	return workflow.UpsertTypedSearchAttributes(ctx, AttrStep.ValueSet(step.ID))
}

func (it *interpreter) leave(ctx workflow.Context, outcome string, err error) {
	v := &it.state.Path[len(it.state.Path)-1]
	now := workflow.Now(ctx)
	v.LeftAt = &now
	v.Outcome = outcome
	if err != nil {
		v.Outcome = "failed: " + err.Error()
	}
	it.state.WaitingFor, it.state.WaitUntil = "", nil
}

// key is the idempotency key of this visit of the step: stable across activity retries and
// workflow replays, distinct for each run (re-entry) and each pass through a loop.
func (it *interpreter) key(ctx workflow.Context, step journey.Step) string {
	info := workflow.GetInfo(ctx)
	return fmt.Sprintf("%s/%s/%s/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, step.ID, it.visits[step.ID])
}

func (it *interpreter) do(ctx workflow.Context, step journey.Step) (string, error) {
	switch step.Kind() {
	case journey.KindAddTag:
		var out activities.ActionOutput
		err := workflow.ExecuteActivity(actionContext(ctx, step), a.AddTag, activities.AddTagInput{
			Key: it.key(ctx, step), ContactID: it.in.ContactID, Tag: step.AddTag,
		}).Get(ctx, &out)
		return "tagged " + step.AddTag, err
	case journey.KindSendEmail:
		var out activities.ActionOutput
		err := workflow.ExecuteActivity(actionContext(ctx, step), a.SendEmail, activities.SendEmailInput{
			Key: it.key(ctx, step), ContactID: it.in.ContactID, Template: step.SendEmail.Template,
		}).Get(ctx, &out)
		return "queued " + step.SendEmail.Template, err
	case journey.KindWait:
		until := workflow.Now(ctx).Add(step.Wait.D)
		it.state.Status = StatusWaiting
		it.state.WaitingFor = "timer: " + step.Summary()
		it.state.WaitUntil = &until
		err := workflow.NewTimerWithOptions(ctx, step.Wait.D, workflow.TimerOptions{
			Summary: fmt.Sprintf("%s: %s", step.ID, step.Summary()),
		}).Get(ctx, nil)
		return "waited " + step.Wait.String(), err
	case journey.KindEnd:
		return "ended", nil
	}
	return "", temporal.NewNonRetryableApplicationError("unknown step kind in "+step.ID, "UnknownStep", nil)
}

// actionContext gives an action activity its timeout, retry policy and a UI summary.
func actionContext(ctx workflow.Context, step journey.Step) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		Summary:             fmt.Sprintf("%s: %s", step.ID, step.Summary()),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			// Transient failures (database restarts, network) are retried for a day; the
			// activities mark permanent ones non-retryable.
			MaximumAttempts: 0,
		},
		ScheduleToCloseTimeout: 24 * time.Hour,
	})
}
