package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
)

// runControlVersion guards what runs did not do before it: move to another version of their
// journey when a migrate signal asks, and keep a delivery step waiting past a day while its
// provider or template is missing. Each is asked where the run first does something new (a
// migrate signal received, a delivery still not ready after a day), so runs that never do pay
// no marker.
const runControlVersion = "run-control"

// migration is a move to another version the run has taken on: from the step the contact was
// at to the target step, keeping the deadline of the wait it was in.
type migration struct {
	m        contract.Migration
	from     string
	target   string
	deadline *time.Time
}

// errMigrating unwinds the steps being walked when the contact is about to move.
var errMigrating = errors.New("moving to another version")

// listenForMigrations takes migrate signals. A contact waiting at a mapped step moves at once
// (its wait is cancelled); one running an action or a check moves when it next reaches a
// wait, if that wait is mapped. A contact at a step the migration leaves out stays.
func (it *interpreter) listenForMigrations(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, contract.SignalMigrate)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var m contract.Migration
			ch.Receive(ctx, &m)
			it.offerMigration(ctx, m)
		}
	})
}

func (it *interpreter) offerMigration(ctx workflow.Context, m contract.Migration) {
	log := workflow.GetLogger(ctx)
	if m.From != it.in.Version || it.moving != nil || it.over() {
		log.Info("migration not for this run", "migration", m.ID, "from", m.From, "version", it.in.Version)
		return
	}
	if it.version(ctx, runControlVersion) < 1 {
		return
	}
	if it.state.Status != contract.StatusWaiting || it.holding {
		it.offered = &m // moves at the next wait, if that wait is mapped
		return
	}
	target := m.Target(it.state.CurrentStep)
	if target == "" {
		log.Info("migration leaves this step out: the run stays", "migration", m.ID, "step", it.state.CurrentStep)
		return
	}
	deadline := it.state.WaitUntil
	if strings.HasPrefix(it.state.WaitingFor, "goal ") {
		deadline = nil // a goal's wait, before its step: the step's own wait has not begun
	}
	it.moving = &migration{m: m, from: it.state.CurrentStep, target: target, deadline: deadline}
	it.cancelStep()
}

// moveBefore is asked before a step is entered: a contact with a migration on offer moves when
// the step is a wait the migration maps; reaching a wait it does not map, it stays.
func (it *interpreter) moveBefore(step journey.Step) error {
	if it.offered == nil || !step.IsWait() {
		return nil
	}
	m := *it.offered
	it.offered = nil
	if target := m.Target(step.ID); target != "" {
		it.moving = &migration{m: m, from: step.ID, target: target}
		return errMigrating
	}
	return nil
}

// migrate continues the run as new on the migration's version, at its target step, carrying
// goals met, visits, the path, recent events and the ids heard; the search attributes and the
// CRM's enrollment move with it.
func (it *interpreter) migrate(ctx workflow.Context) error {
	mv := it.moving
	to := mv.m.Journey
	next := to.TopLevel(mv.target)
	if next < 0 {
		return it.fail(mv.from, fmt.Errorf("migration %d names %q, which is not a top-level step of version %d", mv.m.ID, mv.target, mv.m.To))
	}
	var deadline *time.Time
	if from, target := it.in.Journey.Step(mv.from), to.Step(mv.target); mv.deadline != nil && from != nil && target != nil &&
		from.Kind() == target.Kind() && (from.Kind() == journey.KindWait || from.Kind() == journey.KindWaitUntil) {
		deadline = mv.deadline
	}
	info := workflow.GetInfo(ctx)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	if err := workflow.ExecuteLocalActivity(lctx, a.RecordMigration, activities.MigrationRecord{
		Journey: it.in.Journey.ID, ContactID: it.in.ContactID, RunID: info.FirstRunID, Version: mv.m.To,
	}).Get(ctx, nil); err != nil {
		// The run moves anyway; the dispatcher routes by the old version's interests until
		// the enrollment is recorded again.
		workflow.GetLogger(ctx).Warn("could not record the migration in the CRM", "error", err)
	}
	// Carried over by continue-as-new: the new run starts where these say.
	if err := workflow.UpsertTypedSearchAttributes(ctx, contract.AttrJourneyVersion.ValueSet(int64(mv.m.To)),
		contract.AttrStep.ValueSet(mv.target)); err != nil {
		return err
	}
	it.step = mv.target
	in := it.in
	in.Journey, in.Version, in.Checked = to, mv.m.To, nil
	in.Resume = it.resume(ctx, next)
	in.Resume.Migrated, in.Resume.Deadline, in.Resume.Step = mv.m.ID, deadline, mv.target
	return workflow.NewContinueAsNewError(ctx, contract.WorkflowType, in)
}

// resumedDeadline is, for the step a migrated run resumes at, the deadline of the wait the
// contact was in; nil for any other step, or once used.
func (it *interpreter) resumedDeadline(step journey.Step) *time.Time {
	r := it.in.Resume
	if r == nil || r.Deadline == nil || it.deadlineUsed || r.Next >= len(it.in.Journey.Steps) || it.in.Journey.Steps[r.Next].ID != step.ID {
		return nil
	}
	it.deadlineUsed = true
	return r.Deadline
}

// deliver runs a delivery step's activity. A delivery whose provider or template is missing
// is retried by Temporal with backoff for a day; past that, the run schedules it again, for
// as long as it takes to be configured, instead of failing.
func (it *interpreter) deliver(ctx workflow.Context, step journey.Step, fn, input any, out any) error {
	for {
		err := workflow.ExecuteActivity(actionContext(ctx, step), fn, input).Get(ctx, out)
		var app *temporal.ApplicationError
		if err == nil || !errors.As(err, &app) || app.Type() != activities.ErrTypeNotReady || ctx.Err() != nil {
			return err
		}
		if it.version(ctx, runControlVersion) < 1 {
			return err
		}
		workflow.GetLogger(ctx).Warn("delivery still not ready after its retries: scheduling it again", "step", step.ID, "reason", app.Error())
	}
}
