package workflows

import (
	"errors"
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
	it := &interpreter{in: in, visits: map[string]int{}, lastEvent: map[string]int{}}
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

	// seq counts events received; lastEvent holds, per event name, the seq of the latest.
	// Waits compare them to know whether anything they depend on has happened since.
	seq       int
	lastEvent map[string]int
	exited    bool
}

// errEnded unwinds nested paths when an end step is reached.
var errEnded = errors.New("journey ended")

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
	it.seq++
	it.lastEvent[ev.Name] = it.seq
	it.state.Events = append(it.state.Events, ev)
	if n := len(it.state.Events); n > maxEventsKept {
		it.state.Events = it.state.Events[n-maxEventsKept:]
	}
}

// heardSince reports whether an event named in names arrived after seq.
func (it *interpreter) heardSince(seq int, names []string) bool {
	for _, n := range names {
		if it.lastEvent[n] > seq {
			return true
		}
	}
	return false
}

func (it *interpreter) run(ctx workflow.Context) error {
	steps, cancel := workflow.WithCancel(ctx)
	defer cancel()
	if exit := it.in.Journey.Exit; exit != nil {
		met, err := it.check(ctx, "exit", *exit)
		if err != nil {
			return it.fail("exit", err)
		}
		if met {
			return it.finish(ctx, StatusExited)
		}
		workflow.Go(ctx, func(ctx workflow.Context) { it.watchExit(ctx, *exit, cancel) })
	}
	err := it.walk(steps, it.in.Journey.Steps)
	switch {
	case it.exited:
		return it.finish(ctx, StatusExited)
	case err != nil && !errors.Is(err, errEnded):
		return err
	}
	return it.finish(ctx, StatusCompleted)
}

// watchExit re-checks the exit condition whenever an event it depends on arrives, and
// cancels the steps (a pending timer, wait or activity) the moment it holds.
func (it *interpreter) watchExit(ctx workflow.Context, exit journey.Condition, cancel workflow.CancelFunc) {
	names := exit.Events()
	for {
		seen := it.seq
		if err := workflow.Await(ctx, func() bool { return it.heardSince(seen, names) }); err != nil {
			return
		}
		if met, err := it.check(ctx, "exit", exit); err == nil && met {
			it.exited = true
			cancel()
			return
		}
	}
}

func (it *interpreter) finish(ctx workflow.Context, status string) error {
	it.state.Status = status
	it.state.CurrentStep = StepEnded
	if status == StatusExited {
		it.state.CurrentStep = StepExited
	}
	it.state.WaitingFor, it.state.WaitUntil = "", nil
	return workflow.UpsertTypedSearchAttributes(ctx, AttrStep.ValueSet(it.state.CurrentStep))
}

func (it *interpreter) fail(step string, err error) error {
	it.state.Status = StatusFailed
	it.state.Error = fmt.Sprintf("step %s: %v", step, err)
	return fmt.Errorf("step %s: %w", step, err)
}

// walk runs a list of steps (the journey's, or a then/else path); errEnded means an end step.
func (it *interpreter) walk(ctx workflow.Context, steps []journey.Step) error {
	for _, step := range steps {
		if err := it.enter(ctx, step); err != nil {
			return err
		}
		outcome, path, err := it.do(ctx, step)
		it.leave(ctx, outcome, err)
		if err != nil {
			if it.exited || temporal.IsCanceledError(err) {
				return err
			}
			return it.fail(fmt.Sprintf("%s (%s)", step.ID, step.Summary()), err)
		}
		if step.Kind() == journey.KindEnd {
			return errEnded
		}
		if len(path) > 0 {
			if err := it.walk(ctx, path); err != nil {
				return err
			}
		}
	}
	return nil
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
	switch {
	case it.exited:
		v.Outcome = "left: exit condition met"
	case err != nil:
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

// do performs one step and returns its outcome and, for if and wait_until, the path to take.
func (it *interpreter) do(ctx workflow.Context, step journey.Step) (string, []journey.Step, error) {
	switch step.Kind() {
	case journey.KindAddTag:
		var out activities.ActionOutput
		err := workflow.ExecuteActivity(actionContext(ctx, step), a.AddTag, activities.AddTagInput{
			Key: it.key(ctx, step), ContactID: it.in.ContactID, Tag: step.AddTag,
		}).Get(ctx, &out)
		return "tagged " + step.AddTag, nil, err
	case journey.KindSendEmail:
		var out activities.ActionOutput
		err := workflow.ExecuteActivity(actionContext(ctx, step), a.SendEmail, activities.SendEmailInput{
			Key: it.key(ctx, step), ContactID: it.in.ContactID, Template: step.SendEmail.Template,
		}).Get(ctx, &out)
		return "queued " + step.SendEmail.Template, nil, err
	case journey.KindWait:
		it.waiting(ctx, "timer: "+step.Summary(), step.Wait.D)
		err := workflow.NewTimerWithOptions(ctx, step.Wait.D, workflow.TimerOptions{
			Summary: fmt.Sprintf("%s: %s", step.ID, step.Summary()),
		}).Get(ctx, nil)
		return "waited " + step.Wait.String(), nil, err
	case journey.KindIf:
		met, err := it.check(ctx, step.ID, *step.If)
		if err != nil {
			return "", nil, err
		}
		if met {
			return "condition held: then", step.Then, nil
		}
		return "condition did not hold: else", step.Else, nil
	case journey.KindWaitUntil:
		return it.waitUntil(ctx, step)
	case journey.KindEnd:
		return "ended", nil, nil
	}
	return "", nil, temporal.NewNonRetryableApplicationError("unknown step kind in "+step.ID, "UnknownStep", nil)
}

// waitUntil checks the condition, then waits for an event it depends on (or the timeout)
// before checking again: no polling, and no worker slot held while waiting.
func (it *interpreter) waitUntil(ctx workflow.Context, step journey.Step) (string, []journey.Step, error) {
	w := step.WaitUntil
	names := w.Condition.Events()
	var deadline time.Time
	if w.Timeout != nil {
		deadline = workflow.Now(ctx).Add(w.Timeout.D)
	}
	for {
		met, err := it.check(ctx, step.ID, w.Condition)
		if err != nil {
			return "", nil, err
		}
		if met {
			return "condition met", step.Then, nil
		}
		seen := it.seq
		if deadline.IsZero() {
			it.waiting(ctx, "condition: "+w.Condition.String(), 0)
			if err := workflow.Await(ctx, func() bool { return it.heardSince(seen, names) }); err != nil {
				return "", nil, err
			}
			continue
		}
		left := deadline.Sub(workflow.Now(ctx))
		if left <= 0 {
			return "timed out", step.Else, nil
		}
		it.waiting(ctx, "condition: "+w.Condition.String(), left)
		heard, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      left,
			TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("%s: give up after %s", step.ID, w.Timeout)},
		}, func() bool { return it.heardSince(seen, names) })
		if err != nil {
			return "", nil, err
		}
		if !heard {
			return "timed out", step.Else, nil
		}
	}
}

func (it *interpreter) waiting(ctx workflow.Context, what string, d time.Duration) {
	it.state.Status = StatusWaiting
	it.state.WaitingFor = what
	it.state.WaitUntil = nil
	if d > 0 {
		until := workflow.Now(ctx).Add(d)
		it.state.WaitUntil = &until
	}
}

// check asks the CRM whether the contact matches the condition now.
func (it *interpreter) check(ctx workflow.Context, stepID string, c journey.Condition) (bool, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		Summary:             fmt.Sprintf("%s: check %s", stepID, c),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
		ScheduleToCloseTimeout: 24 * time.Hour,
	})
	var met bool
	err := workflow.ExecuteActivity(ctx, a.CheckCondition, activities.CheckInput{
		ContactID: it.in.ContactID, Condition: c, EnteredAt: workflow.GetInfo(ctx).WorkflowStartTime,
	}).Get(ctx, &met)
	return met, err
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
