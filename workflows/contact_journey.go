package workflows

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/telemetry"
)

// a is only used for method names in ExecuteActivity; the worker registers the real struct.
var a *activities.Activities

// ContactJourney walks one contact through one pinned journey version.
func ContactJourney(ctx workflow.Context, in contract.Input) (contract.State, error) {
	it := &interpreter{in: in, visits: map[string]int{}, lastEvent: map[string]int{}, jump: -1, cancelStep: func() {}}
	if err := it.setup(ctx); err != nil {
		return it.state, err
	}
	err := it.run(ctx)
	if err != nil && it.v >= 1 && !workflow.IsContinueAsNewError(err) {
		// A failed (or cancelled) run tells the CRM it is over too, so its enrollment closes
		// and {in_journey: ...} stops listing the contact; a cancelled context still records.
		status := contract.StatusFailed
		if temporal.IsCanceledError(err) {
			status = "cancelled"
		}
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		it.recordRun(dctx, "run end", a.RecordRunEnd, activities.RunRecord{Status: status})
	}
	return it.state, err
}

type interpreter struct {
	in     contract.Input
	state  contract.State
	visits map[string]int // step id → times entered, for idempotency keys of loops

	// seq counts events received; lastEvent holds, per event name, the seq of the latest.
	// Waits compare them to know whether anything they depend on has happened since.
	seq       int
	lastEvent map[string]int
	exited    bool

	// pc is the top-level step being run; jump is where a goal sends the contact (-1: none);
	// cancelStep cancels the top-level step being run.
	pc         int
	jump       int
	cancelStep workflow.CancelFunc

	// v is the run's eventPathVersion. From 1 on, heard holds the ids of the latest events
	// heard (in heardOrder) so a repeated delivery is ignored, and log the latest events
	// with their seq, to answer conditions from the events themselves.
	v workflow.Version
	// step is the CairnStep value the run's search attributes hold, so the same value is not
	// upserted twice (the starter sets the first step's at start).
	step       string
	heard      map[int64]bool
	heardOrder []int64
	log        []heardEvent

	// cv is the run's triggerContextVersion; from 1 on, trigger is the event that started it.
	cv      workflow.Version
	trigger *contract.Event
	// moving is the migration the run is making; offered, one it makes at its next wait
	// (migration.go). deadlineUsed says a migrated run's first wait took its deadline.
	moving       *migration
	offered      *contract.Migration
	deadlineUsed bool
	// holding says a send step waits (deferred by the send policy, or for its best time):
	// a migration offered then moves the run at its next wait, never from the send.
	holding bool
}

// heardEvent is an event with its place in the order the run heard events.
type heardEvent struct {
	seq int
	ev  contract.Event
}

// eventPathVersion guards what the event path changed in a run: an event heard twice (a
// dispatch repeated after a failure) is ignored; a field test wakes on any event that
// changed the field; a wait_until checks once more at its timeout, and so does a goal's wait;
// conditions are answered from the event that settles them, or else in a local activity; the
// starter sets the run's search attributes at start and an alias updates them.
const eventPathVersion = "event-path"

// revisions says from which Input.Revision on each change is on without a GetVersion marker
// (contract.Revision). A change added later is decided by GetVersion until a revision names it.
var revisions = map[string]int{
	eventPathVersion:           1,
	triggerContextVersion:      1,
	runControlVersion:          1,
	contract.VersionSendPolicy: 1,
}

// version is the run's version of a change, 0 or 1: from its input's revision when that
// covers the change, else from a GetVersion marker (written by the run's first call).
func (it *interpreter) version(ctx workflow.Context, change string) workflow.Version {
	if r, ok := revisions[change]; ok && it.in.Revision >= r {
		return 1
	}
	return workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1)
}

const (
	// maxHeardKept bounds the event ids remembered (and carried across continue-as-new) to
	// recognise repeats: a repeat comes right after a failed dispatch, never thousands later.
	maxHeardKept = 500
	// maxLogKept bounds the events kept to answer conditions from.
	maxLogKept = 100
)

// errEnded unwinds nested paths when an end step is reached.
var errEnded = errors.New("journey ended")

// setup registers the query and signal handlers and sets the search attributes.
func (it *interpreter) setup(ctx workflow.Context) error {
	it.v = it.version(ctx, eventPathVersion)
	it.heard = map[int64]bool{}
	it.state = contract.State{
		JourneyID: it.in.Journey.ID,
		Version:   it.in.Version,
		ContactID: it.in.ContactID,
		Status:    contract.StatusRunning,
		Path:      []contract.Visit{},
		GoalsMet:  []string{},
		Events:    []contract.Event{},
	}
	if r := it.in.Resume; r != nil {
		it.state.GoalsMet = append(it.state.GoalsMet, r.GoalsMet...)
		it.state.Events = append(it.state.Events, r.Events...)
		it.state.Path = append(it.state.Path, r.Path...)
		for k, v := range r.Visits {
			it.visits[k] = v
		}
		for _, id := range r.Heard {
			it.remember(id)
		}
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryState, func() (contract.State, error) { return it.stateNow(), nil }); err != nil {
		return fmt.Errorf("register %s query: %w", contract.QueryState, err)
	}
	events := workflow.GetSignalChannel(ctx, contract.SignalEvent)
	it.takeTrigger(ctx, events)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var ev contract.Event
			events.Receive(ctx, &ev)
			it.record(ctx, ev)
		}
	})
	it.listenForMigrations(ctx)
	if it.v >= 1 {
		// The starter set the search attributes at start, CairnStep to the first step; a
		// migrated run's were set before it moved.
		if r := it.in.Resume; r == nil && len(it.in.Journey.Steps) > 0 {
			it.step = it.in.Journey.Steps[0].ID
		} else if r != nil {
			it.step = r.Step
		}
		return nil
	}
	// Runs from before the event path upserted these again in their first task.
	return workflow.UpsertTypedSearchAttributes(ctx,
		contract.AttrJourney.ValueSet(it.in.Journey.ID),
		contract.AttrContact.ValueSet(fmt.Sprint(it.in.ContactID)),
		contract.AttrJourneyVersion.ValueSet(int64(it.in.Version)),
	)
}

func (it *interpreter) record(ctx workflow.Context, ev contract.Event) {
	if it.v >= 1 && ev.ID != 0 {
		if it.heard[ev.ID] {
			return // delivered again after a dispatch failed half-way: heard already
		}
		it.remember(ev.ID)
	}
	it.noteTrigger(ev)
	it.seq++
	it.lastEvent[ev.Name] = it.seq
	if it.v >= 1 {
		for _, f := range ev.Changed {
			it.lastEvent[journey.FieldInterest(f)] = it.seq
		}
		it.log = append(it.log, heardEvent{seq: it.seq, ev: ev})
		if n := len(it.log); n > maxLogKept {
			it.log = it.log[n-maxLogKept:]
		}
		if ev.Name == journey.EventAlias && len(ev.ContactIDs) > 0 {
			// The contact is now known by another id too: keep the run findable by it.
			if err := workflow.UpsertTypedSearchAttributes(ctx, contract.ContactAttributes(ev.ContactIDs[0], ev.ContactIDs[1:])...); err != nil {
				workflow.GetLogger(ctx).Warn("could not update the contact's search attributes", "error", err)
			}
		}
	}
	it.state.Events = append(it.state.Events, ev)
	if n := len(it.state.Events); n > maxEventsKept {
		it.state.Events = it.state.Events[n-maxEventsKept:]
	}
}

// remember adds an event id to those heard, forgetting the oldest past maxHeardKept.
func (it *interpreter) remember(id int64) {
	it.heard[id] = true
	it.heardOrder = append(it.heardOrder, id)
	if len(it.heardOrder) > maxHeardKept {
		delete(it.heard, it.heardOrder[0])
		it.heardOrder = it.heardOrder[1:]
	}
}

// names lists what a condition listens for, as this run's version hears it.
func (it *interpreter) names(c journey.Condition) []string {
	if it.v >= 1 {
		return c.Events()
	}
	return c.LegacyEvents()
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
	j := &it.in.Journey
	pc := 0
	if r := it.in.Resume; r != nil {
		pc = r.Next
	}
	// The starter checked exit and goals as it started the run: no need to ask again.
	pre := it.in.Checked
	if it.v < 1 || it.in.Resume != nil {
		pre = nil
	}
	if j.Exit != nil {
		met := pre != nil && pre.Exited
		if pre == nil {
			var err error
			if met, err = it.check(ctx, "exit", *j.Exit, it.seq); err != nil {
				return it.fail("exit", err)
			}
		}
		if met {
			return it.finish(ctx, contract.StatusExited)
		}
	}
	// A goal already met on entry jumps the contact straight to its step.
	for _, g := range j.Goals {
		if it.goalMet(g.ID) {
			continue
		}
		met := pre != nil && slices.Contains(pre.GoalsMet, g.ID)
		if pre == nil {
			var err error
			if met, err = it.check(ctx, "goal "+g.ID, g.When, it.seq); err != nil {
				return it.fail("goal "+g.ID, err)
			}
		}
		if met {
			it.meetGoal(ctx, g)
			if to := j.TopLevel(g.Then); to > pc {
				pc = to
			}
		}
	}
	if j.Exit != nil || len(j.Goals) > 0 {
		workflow.Go(ctx, it.watch)
	}
	for pc < len(j.Steps) {
		if it.shouldContinueAsNew(ctx) {
			return it.continueAsNew(ctx, pc)
		}
		step := j.Steps[pc]
		if g := it.goalAt(step.ID); g != nil && !it.goalMet(g.ID) {
			done, err := it.reachGoal(ctx, *g)
			if err != nil || done {
				return err
			}
		}
		it.pc = pc
		stepCtx, cancel := workflow.WithCancel(ctx)
		it.cancelStep = cancel
		err := it.walk(stepCtx, j.Steps[pc:pc+1])
		cancel()
		var jump *jumpTo
		switch {
		case it.exited:
			return it.finish(ctx, contract.StatusExited)
		case it.moving != nil:
			return it.migrate(ctx)
		case it.jump > pc:
			pc, it.jump = it.jump, -1
			continue
		case errors.As(err, &jump):
			pc = jump.index
			continue
		case errors.Is(err, errEnded):
			return it.finish(ctx, contract.StatusCompleted)
		case err != nil:
			return err
		}
		pc++
	}
	return it.finish(ctx, contract.StatusCompleted)
}

// jumpTo is how a goto step unwinds to the top-level loop.
type jumpTo struct{ index int }

func (j *jumpTo) Error() string { return fmt.Sprintf("go to step %d", j.index) }

// watch re-checks the exit and goal conditions whenever an event they depend on arrives.
// The exit cancels the current step and ends the run; a goal whose step is ahead cancels the
// current step (a pending timer, wait or activity) and makes the loop jump there.
func (it *interpreter) watch(ctx workflow.Context) {
	j := &it.in.Journey
	var exitNames []string
	if j.Exit != nil {
		exitNames = it.names(*j.Exit)
	}
	all := j.Interests()
	if it.v < 1 {
		all = j.LegacyInterests()
	}
	for {
		seen := it.seq
		if err := workflow.Await(ctx, func() bool { return it.heardSince(seen, all) }); err != nil {
			return
		}
		if j.Exit != nil && it.heardSince(seen, exitNames) {
			if met, err := it.check(ctx, "exit", *j.Exit, seen); err == nil && met {
				it.exited = true
				it.cancelStep()
				return
			}
		}
		for _, g := range j.Goals {
			if it.goalMet(g.ID) || !it.heardSince(seen, it.names(g.When)) {
				continue
			}
			met, err := it.check(ctx, "goal "+g.ID, g.When, seen)
			if err != nil || !met {
				continue
			}
			it.meetGoal(ctx, g)
			if to := j.TopLevel(g.Then); to > it.pc && it.jump < 0 {
				it.jump = to
				it.cancelStep()
			}
		}
	}
}

func (it *interpreter) goalMet(id string) bool {
	for _, g := range it.state.GoalsMet {
		if g == id {
			return true
		}
	}
	return false
}

func (it *interpreter) meetGoal(ctx workflow.Context, g journey.Goal) {
	it.state.GoalsMet = append(it.state.GoalsMet, g.ID)
	workflow.GetLogger(ctx).Info("goal met", "goal", g.ID, "then", g.Then)
	it.recordRun(ctx, "goal "+g.ID, a.RecordGoal, activities.RunRecord{Goal: g.ID})
}

// recordsVersion guards the CRM records of goals met and runs ended: histories from before
// they existed replay without them.
const recordsVersion = "crm-run-records"

// recordRun tells the CRM about the run (a goal met, its end) in a local activity. A failure
// is logged, not fatal: the run's own state is the truth, and enrollments also close lazily.
func (it *interpreter) recordRun(ctx workflow.Context, what string, fn any, rec activities.RunRecord) {
	// Runs from the event path on always record; older ones asked this version.
	if it.v < 1 && workflow.GetVersion(ctx, recordsVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	info := workflow.GetInfo(ctx)
	rec.Journey, rec.ContactID, rec.RunID, rec.At = it.in.Journey.ID, it.in.ContactID, info.FirstRunID, workflow.Now(ctx)
	rec.TriggerEvent = it.triggerID()
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	if err := workflow.ExecuteLocalActivity(lctx, fn, rec).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("could not record "+what+" in the CRM", "error", err)
	}
}

func (it *interpreter) goalAt(stepID string) *journey.Goal {
	for i, g := range it.in.Journey.Goals {
		if g.Then == stepID {
			return &it.in.Journey.Goals[i]
		}
	}
	return nil
}

// reachGoal handles a contact arriving at a goal's step without having met it; done means
// the run is over.
func (it *interpreter) reachGoal(ctx workflow.Context, g journey.Goal) (done bool, err error) {
	switch g.OnReach {
	case journey.OnReachEnd:
		return true, it.finish(ctx, contract.StatusCompleted)
	case journey.OnReachWait:
		it.state.CurrentStep = g.Then
		if err := it.setStep(ctx, g.Then); err != nil {
			return true, err
		}
		met := func() bool { return it.goalMet(g.ID) || it.exited || it.moving != nil }
		if g.WaitTimeout == nil {
			it.waiting(ctx, "goal "+g.ID, 0)
			if err := workflow.Await(ctx, met); err != nil {
				return true, err
			}
		} else {
			it.waiting(ctx, "goal "+g.ID, g.WaitTimeout.D)
			ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
				Timeout:      g.WaitTimeout.D,
				TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("goal %s: wait at most %s", g.ID, g.WaitTimeout)},
			}, met)
			if err != nil {
				return true, err
			}
			if !ok && it.v >= 1 {
				// A last look at the timeout: the goal may hold without an event having said so.
				held, err := it.check(ctx, "goal "+g.ID, g.When, it.seq)
				if err != nil {
					return true, it.fail("goal "+g.ID, err)
				}
				if held {
					it.meetGoal(ctx, g)
				}
			}
		}
		it.state.WaitingFor, it.state.WaitUntil = "", nil
		if it.exited {
			return true, it.finish(ctx, contract.StatusExited)
		}
		if it.moving != nil {
			return true, it.migrate(ctx)
		}
	}
	return false, nil
}

// shouldContinueAsNew is asked between top-level steps, where the run's whole position is
// the index of the next step.
func (it *interpreter) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	limit := it.in.HistoryLimit
	if limit == 0 {
		limit = defaultHistoryLimit
	}
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > limit
}

// continueAsNew carries the run's state into a fresh history. Signals that arrived in this
// workflow task are drained into the state first; any that arrive later make the server
// reject the completion and replay this task with them, so none is lost.
func (it *interpreter) continueAsNew(ctx workflow.Context, next int) error {
	in := it.in
	in.Resume = it.resume(ctx, next)
	return workflow.NewContinueAsNewError(ctx, contract.WorkflowType, in)
}

// resume is the state a run carries into a new run that starts at step next, with the
// events signalled in this workflow task drained into it.
func (it *interpreter) resume(ctx workflow.Context, next int) *contract.Resume {
	ch := workflow.GetSignalChannel(ctx, contract.SignalEvent)
	for {
		var ev contract.Event
		if !ch.ReceiveAsync(&ev) {
			break
		}
		it.record(ctx, ev)
	}
	r := &contract.Resume{
		Next:      next,
		EnteredAt: it.enteredAt(ctx),
		Visits:    it.visits,
		GoalsMet:  it.state.GoalsMet,
		Events:    it.state.Events,
		Path:      it.state.Path,
		Heard:     it.heardOrder,
		Trigger:   it.trigger,
	}
	if n := len(r.Path); n > maxPathKept {
		r.Path = r.Path[n-maxPathKept:]
	}
	return r
}

func (it *interpreter) enteredAt(ctx workflow.Context) time.Time {
	if it.in.Resume != nil && !it.in.Resume.EnteredAt.IsZero() {
		return it.in.Resume.EnteredAt
	}
	return workflow.GetInfo(ctx).WorkflowStartTime
}

func (it *interpreter) finish(ctx workflow.Context, status string) error {
	it.recordRun(ctx, "run end", a.RecordRunEnd, activities.RunRecord{Status: status})
	it.state.Status = status
	it.state.CurrentStep = contract.StepEnded
	if status == contract.StatusExited {
		it.state.CurrentStep = contract.StepExited
	}
	it.state.WaitingFor, it.state.WaitUntil = "", nil
	if it.v >= 1 {
		// The run's status says it is over and its result says how: writing CairnStep once
		// more would cost every run one more history event and visibility write at its end.
		return nil
	}
	return it.setStep(ctx, it.state.CurrentStep)
}

func (it *interpreter) fail(step string, err error) error {
	it.state.Status = contract.StatusFailed
	it.state.Error = fmt.Sprintf("step %s: %v", step, err)
	return fmt.Errorf("step %s: %w", step, err)
}

// walk runs a list of steps (the journey's, or a then/else path); errEnded means an end step.
func (it *interpreter) walk(ctx workflow.Context, steps []journey.Step) error {
	for _, step := range steps {
		if err := it.moveBefore(step); err != nil {
			return err
		}
		if err := it.enter(ctx, step); err != nil {
			return err
		}
		outcome, path, err := it.do(ctx, step)
		var jump *jumpTo
		if errors.As(err, &jump) {
			it.leave(ctx, outcome, nil)
			return err
		}
		it.leave(ctx, outcome, err)
		if err != nil {
			if it.exited || it.jump >= 0 || it.moving != nil || temporal.IsCanceledError(err) {
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
	it.state.Status = contract.StatusRunning
	it.state.Path = append(it.state.Path, contract.Visit{
		Step: step.ID, Kind: step.Kind(), Summary: step.Summary(), EnteredAt: workflow.Now(ctx),
	})
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("at step **%s**: %s", step.ID, step.Summary()))
	return it.setStep(ctx, step.ID)
}

// setStep keeps CairnStep on the step the contact is at. From the event path's version on, a
// value the search attribute already holds is not written again (one history event and one
// visibility update fewer per run: the starter sets the first step at start).
func (it *interpreter) setStep(ctx workflow.Context, id string) error {
	if it.v >= 1 && id == it.step {
		return nil
	}
	it.step = id
	return workflow.UpsertTypedSearchAttributes(ctx, contract.AttrStep.ValueSet(id))
}

func (it *interpreter) leave(ctx workflow.Context, outcome string, err error) {
	v := &it.state.Path[len(it.state.Path)-1]
	now := workflow.Now(ctx)
	v.LeftAt = &now
	v.Outcome = outcome
	counted := telemetry.StepDone
	switch {
	case it.exited:
		v.Outcome, counted = "left: exit condition met", telemetry.StepExited
	case it.jump >= 0 && err != nil:
		v.Outcome, counted = "left: goal met", telemetry.StepGoal
	case it.moving != nil && err != nil:
		v.Outcome = fmt.Sprintf("left: moved to version %d at %s", it.moving.m.To, it.moving.target)
	case err != nil:
		v.Outcome, counted = "failed: "+err.Error(), telemetry.StepFailed
	}
	// Counted only outside replay; it changes nothing the run records.
	telemetry.StepLeft(ctx, v.Kind, counted)
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
		waited := ""
		if b := step.BestTimeWait(); b != nil {
			it.holding = true
			note, err := it.bestTime(ctx, step, b)
			it.holding = false
			if err != nil {
				return "", nil, err
			}
			waited = ", " + note
		}
		outcome, err := it.send(ctx, step, a.SendEmail, activities.SendEmailInput{
			Key: it.key(ctx, step), ContactID: it.in.ContactID, Template: step.SendEmail.Template,
			Journey: it.in.Journey.ID, Step: step.ID, Policy: it.sendPolicy(ctx, step),
			Trigger: it.trigger, Event: it.latestEvent(), Timezone: it.timezone(),
		}, "queued "+step.SendEmail.Template)
		return outcome + waited, nil, err
	case journey.KindRemoveTag, journey.KindUpdateFields, journey.KindAdjustScore, journey.KindSubscribe,
		journey.KindUnsubscribe, journey.KindCreateDeal, journey.KindMoveDeal, journey.KindCreateTask,
		journey.KindAddNote, journey.KindStartJourney, journey.KindSendSMS, journey.KindNotify,
		journey.KindAddToAudience, journey.KindRemoveFromAudience:
		in := activities.ActionInput{Key: it.key(ctx, step), ContactID: it.in.ContactID, Step: step, Journey: it.in.Journey.ID,
			Policy: it.sendPolicy(ctx, step)}
		it.textTemplate(step, &in)
		outcome, err := it.send(ctx, step, actionActivity(step.Kind()), in, "done: "+step.Summary())
		return outcome, nil, err
	case journey.KindWait:
		d := step.Wait.D
		if deadline := it.resumedDeadline(step); deadline != nil {
			// Moved here from a wait by a migration: the wait ends when the old one would have.
			if d = deadline.Sub(workflow.Now(ctx)); d <= 0 {
				return "its deadline passed while moving", nil, nil
			}
		}
		it.waiting(ctx, "timer: "+step.Summary(), d)
		err := workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{
			Summary: fmt.Sprintf("%s: %s", step.ID, step.Summary()),
		}).Get(ctx, nil)
		return "waited " + step.Wait.String(), nil, err
	case journey.KindIf:
		met, err := it.check(ctx, step.ID, *step.If, it.seq)
		if err != nil {
			return "", nil, err
		}
		if met {
			return "condition held: then", step.Then, nil
		}
		return "condition did not hold: else", step.Else, nil
	case journey.KindWaitUntil:
		return it.waitUntil(ctx, step)
	case journey.KindDate, journey.KindWindow:
		return it.calendarWait(ctx, step)
	case journey.KindGoto:
		if it.visits[step.ID] > step.Goto.Max {
			return fmt.Sprintf("loop limit %d reached: going on", step.Goto.Max), nil, nil
		}
		return "going to " + step.Goto.Step, nil, &jumpTo{index: it.in.Journey.TopLevel(step.Goto.Step)}
	case journey.KindSplit:
		// Drawn once and recorded in history: replay takes the same path.
		var draw int
		if err := workflow.SideEffect(ctx, func(workflow.Context) any { return rand.IntN(100) }).Get(&draw); err != nil {
			return "", nil, err
		}
		for i, p := range step.Split {
			if draw -= p.Percent; draw < 0 {
				return fmt.Sprintf("drew path %d (%d%%)", i+1, p.Percent), p.Steps, nil
			}
		}
		return "", nil, fmt.Errorf("split percentages do not add up to 100")
	case journey.KindSplitTest:
		return it.splitTest(ctx, step)
	case journey.KindBestTime:
		note, err := it.bestTime(ctx, step, step.WaitForBestTime)
		return note, nil, err
	case journey.KindBranch:
		conds := []journey.Condition{}
		for _, p := range step.Branch {
			if p.When != nil {
				conds = append(conds, *p.When)
			}
		}
		first, err := it.firstMatch(ctx, step.ID, conds)
		if err != nil {
			return "", nil, err
		}
		if first < 0 {
			last := step.Branch[len(step.Branch)-1]
			if last.When == nil {
				return "no condition held: default path", last.Steps, nil
			}
			return "no condition held", nil, nil
		}
		return fmt.Sprintf("path %d: %s", first+1, step.Branch[first].When), step.Branch[first].Steps, nil
	case journey.KindEnd:
		return "ended", nil, nil
	}
	return "", nil, temporal.NewNonRetryableApplicationError("unknown step kind in "+step.ID, "UnknownStep", nil)
}

// waitUntil checks the condition, then waits for an event it depends on (or the timeout)
// before checking again: no polling, and no worker slot held while waiting.
func (it *interpreter) waitUntil(ctx workflow.Context, step journey.Step) (string, []journey.Step, error) {
	w := step.WaitUntil
	names := it.names(w.Condition)
	var deadline time.Time
	if w.Timeout != nil {
		deadline = workflow.Now(ctx).Add(w.Timeout.D)
		if kept := it.resumedDeadline(step); kept != nil {
			deadline = *kept // moved here from a wait_until by a migration
		}
	}
	seen := it.seq
	for {
		met, err := it.check(ctx, step.ID, w.Condition, seen)
		if err != nil {
			return "", nil, err
		}
		if met {
			return "condition met", step.Then, nil
		}
		seen = it.seq
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
			if it.v >= 1 {
				// A last look before else: the condition may hold without an event having said
				// so (a change the run was not told about, or a time window that opened).
				met, err := it.check(ctx, step.ID, w.Condition, it.seq)
				if err != nil {
					return "", nil, err
				}
				if met {
					return "condition met at the timeout", step.Then, nil
				}
			}
			return "timed out", step.Else, nil
		}
	}
}

// calendarWait asks (in a local activity) when a date or window wait ends for this contact,
// then sleeps on one timer until then.
func (it *interpreter) calendarWait(ctx workflow.Context, step journey.Step) (string, []journey.Step, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	var out activities.ScheduleOutput
	err := workflow.ExecuteLocalActivity(lctx, a.ScheduleWait, activities.ScheduleInput{
		ContactID: it.in.ContactID, Date: step.WaitUntilDate, Window: step.WaitForWindow,
		DefaultTimezone: it.in.Journey.Timezone, After: workflow.Now(ctx),
	}).Get(ctx, &out)
	if err != nil {
		return "", nil, err
	}
	left := out.At.Sub(workflow.Now(ctx))
	if out.At.IsZero() || left <= 0 {
		return "no wait: " + out.Note, nil, nil
	}
	it.waiting(ctx, step.Summary()+" in "+out.Zone, left)
	// The summary says when in UTC: the contact's zone and local time are the contact's data.
	err = workflow.NewTimerWithOptions(ctx, left, workflow.TimerOptions{
		Summary: fmt.Sprintf("%s: wait until %s", step.ID, out.At.UTC().Format("Mon 2006-01-02 15:04 UTC")),
	}).Get(ctx, nil)
	return "waited " + out.Note + " " + out.Zone, nil, err
}

func (it *interpreter) waiting(ctx workflow.Context, what string, d time.Duration) {
	it.state.Status = contract.StatusWaiting
	it.state.WaitingFor = what
	it.state.WaitUntil = nil
	if d > 0 {
		until := workflow.Now(ctx).Add(d)
		it.state.WaitUntil = &until
	}
}

// check says whether the contact matches the condition now. From the event path's version
// on, the events heard since seq answer it when they settle it; otherwise the CRM is asked in
// a local activity (one marker in history, no task queue round trip).
func (it *interpreter) check(ctx workflow.Context, stepID string, c journey.Condition, since int) (bool, error) {
	if it.v >= 1 {
		if holds, ok := it.decide(ctx, c, since); ok {
			return holds, nil
		}
		lctx := workflow.WithLocalActivityOptions(ctx, checkLocalOptions(fmt.Sprintf("%s: check %s", stepID, c)))
		var met bool
		err := workflow.ExecuteLocalActivity(lctx, a.CheckCondition, activities.CheckInput{
			ContactID: it.in.ContactID, Condition: c, EnteredAt: it.enteredAt(ctx), Trigger: it.triggerProperties(),
		}).Get(ctx, &met)
		return met, err
	}
	ctx = workflow.WithActivityOptions(ctx, checkOptions(fmt.Sprintf("%s: check %s", stepID, c)))
	var met bool
	err := workflow.ExecuteActivity(ctx, a.CheckCondition, activities.CheckInput{
		ContactID: it.in.ContactID, Condition: c, EnteredAt: it.enteredAt(ctx),
	}).Get(ctx, &met)
	return met, err
}

// decide answers the condition from the events heard after seq, when they settle it. It is
// asked only after the condition was found false at seq (a wait, the exit and the goals check
// again when an event they listen for arrives): events that cannot change it leave it false;
// one that makes it hold is enough (a condition becoming true is what they wait for); any
// event whose effect the event alone cannot tell sends the question to the CRM.
func (it *interpreter) decide(ctx workflow.Context, c journey.Condition, seq int) (holds, decided bool) {
	now, entered := workflow.Now(ctx), it.enteredAt(ctx)
	heard := false
	for _, h := range it.log {
		if h.seq <= seq {
			continue
		}
		heard = true
		e := journey.Heard{Name: h.ev.Name, Properties: h.ev.Properties, OccurredAt: h.ev.OccurredAt, Changed: h.ev.Changed,
			Now: now, EnteredAt: entered, Trigger: it.triggerProperties()}
		if !c.Affects(e) {
			continue
		}
		ok, known := c.DecideFrom(e)
		if !known {
			return false, false
		}
		if ok {
			return true, true
		}
	}
	// Nothing heard since seq: the question is a first look, for the CRM.
	return false, heard
}

// firstMatch asks, in one activity, which condition of a branch holds first (-1: none).
func (it *interpreter) firstMatch(ctx workflow.Context, stepID string, conds []journey.Condition) (int, error) {
	in := activities.FirstMatchInput{ContactID: it.in.ContactID, Conditions: conds, EnteredAt: it.enteredAt(ctx), Trigger: it.triggerProperties()}
	if it.v >= 1 {
		lctx := workflow.WithLocalActivityOptions(ctx, checkLocalOptions(fmt.Sprintf("%s: check %d conditions", stepID, len(conds))))
		var first int
		err := workflow.ExecuteLocalActivity(lctx, a.FirstMatch, in).Get(ctx, &first)
		return first, err
	}
	ctx = workflow.WithActivityOptions(ctx, checkOptions(fmt.Sprintf("%s: check %d conditions", stepID, len(conds))))
	var first int
	err := workflow.ExecuteActivity(ctx, a.FirstMatch, in).Get(ctx, &first)
	return first, err
}

func checkOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
		ScheduleToCloseTimeout: 24 * time.Hour,
	}
}

// checkLocalOptions are a condition check's, as a local activity: the same retries as the
// activity it replaced.
func checkLocalOptions(summary string) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 24 * time.Hour,
		Summary:                summary,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	}
}

// actionActivity names the activity that performs an action step.
func actionActivity(kind string) any {
	switch kind {
	case journey.KindRemoveTag:
		return a.RemoveTag
	case journey.KindUpdateFields:
		return a.UpdateFields
	case journey.KindAdjustScore:
		return a.AdjustScore
	case journey.KindSubscribe:
		return a.Subscribe
	case journey.KindUnsubscribe:
		return a.Unsubscribe
	case journey.KindCreateDeal:
		return a.CreateDeal
	case journey.KindMoveDeal:
		return a.MoveDeal
	case journey.KindCreateTask:
		return a.CreateTask
	case journey.KindAddNote:
		return a.AddNote
	case journey.KindStartJourney:
		return a.StartJourney
	case journey.KindSendSMS:
		return a.SendSMS
	case journey.KindNotify:
		return a.Notify
	case journey.KindAddToAudience:
		return a.AddToAudience
	}
	return a.RemoveFromAudience
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

const (
	defaultHistoryLimit = 10000
	// maxPathKept bounds the path carried across continue-as-new.
	maxPathKept = 200
	// maxEventsKept bounds the events the state query shows, so a chatty contact cannot grow
	// the workflow's state without limit.
	maxEventsKept = 50
)
