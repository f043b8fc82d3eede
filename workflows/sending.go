package workflows

// Sending: the send policy's deferrals, split tests and learned send times, as a run meets them.

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// sendPolicy is what the run tells a send step's activity about the send policy: the
// journey's policy for the step's channel, the step's if_capped and transactional, and the
// journey's time zone. Runs from before the send policy tell nothing (nil), so their sends
// go out as they did. The version marker is written once, at the run's first send.
func (it *interpreter) sendPolicy(ctx workflow.Context, step journey.Step) *activities.SendPolicy {
	ch, rules, ok := step.Delivery()
	if !ok {
		return nil
	}
	if it.version(ctx, contract.VersionSendPolicy) < 1 {
		return nil
	}
	return &activities.SendPolicy{Journey: it.in.Journey.Policy.For(ch), Rules: rules, Timezone: it.in.Journey.Timezone}
}

// minDeferral keeps a deferral whose time has already come (the worker's clock ahead of the
// workflow's) from asking again in a tight loop.
const minDeferral = time.Second

// send runs a send step's activity (deliver) under the send policy. The check and the
// reservation happen inside the activity, so a send the policy lets through costs no history
// event more than one without a policy. While the policy holds the send back the run waits on
// one durable timer until the time the activity named, then asks again with the same
// idempotency key: the send is deferred, never dropped. A step with if_capped: skip goes on
// without it. sent is the outcome of a send that went out.
func (it *interpreter) send(ctx workflow.Context, step journey.Step, fn, input any, sent string) (string, error) {
	deferrals := 0
	for {
		var out activities.ActionOutput
		if err := it.deliver(ctx, step, fn, input, &out); err != nil {
			return "", err
		}
		d := out.Deferred
		switch {
		case d == nil && deferrals == 0:
			return sent, nil
		case d == nil && deferrals == 1:
			return sent + " (deferred once)", nil
		case d == nil:
			return fmt.Sprintf("%s (deferred %d times)", sent, deferrals), nil
		case d.Skipped:
			return fmt.Sprintf("skipped by %s (if_capped: skip; allowed from %s)", d.Rule, utc(d.Until)), nil
		}
		deferrals++
		// Times are shown in UTC: the contact's zone and local time are the contact's data.
		what := fmt.Sprintf("deferred by %s until %s", d.Rule, utc(d.Until))
		left := max(d.Until.Sub(workflow.Now(ctx)), minDeferral)
		it.waiting(ctx, what, left)
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("at step **%s**: %s, %s", step.ID, step.Summary(), what))
		it.holding = true
		err := workflow.NewTimerWithOptions(ctx, left, workflow.TimerOptions{Summary: step.ID + ": " + what}).Get(ctx, nil)
		it.holding = false
		if err != nil {
			return "", err
		}
		it.state.Status, it.state.WaitingFor, it.state.WaitUntil = contract.StatusRunning, "", nil
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("at step **%s**: %s", step.ID, step.Summary()))
	}
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// splitTest sends the contact down a variant of a split test: the local activity picks it
// (the next in turn while the test runs, the winner once decided) and its result, recorded in
// history, is what replay takes.
func (it *interpreter) splitTest(ctx workflow.Context, step journey.Step) (string, []journey.Step, error) {
	info := workflow.GetInfo(ctx)
	t := step.SplitTest
	lctx := workflow.WithLocalActivityOptions(ctx, checkLocalOptions(step.ID+": pick a variant"))
	var out crm.SplitAssignment
	err := workflow.ExecuteLocalActivity(lctx, a.AssignSplit, activities.SplitInput{
		Key: it.key(ctx, step), ContactID: it.in.ContactID, Journey: it.in.Journey.ID, Step: step.ID,
		RunKey: info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID + "/", RunID: info.FirstRunID, Test: *t,
	}).Get(ctx, &out)
	if err != nil {
		return "", nil, err
	}
	v := t.Variant(out.Variant)
	if v == nil {
		return "", nil, fmt.Errorf("split test %s: variant %q is not in this version of the journey", step.ID, out.Variant)
	}
	if out.InTest {
		return fmt.Sprintf("variant %s (in the test)", v.ID), v.Steps, nil
	}
	return fmt.Sprintf("variant %s (the winner, %s)", v.ID, out.Decided.Reason), v.Steps, nil
}

// bestTime waits for the contact's best time within b.Within: a local activity learns it from
// the contact's (or everyone's) opens and clicks, and one timer sleeps until then. The note
// says where the time came from.
func (it *interpreter) bestTime(ctx workflow.Context, step journey.Step, b *journey.BestTime) (string, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, checkLocalOptions(step.ID+": find the best time"))
	var out activities.ScheduleOutput
	err := workflow.ExecuteLocalActivity(lctx, a.BestTime, activities.BestTimeInput{
		ContactID: it.in.ContactID, Within: b.Within, Window: b.Window, DefaultTimezone: it.in.Journey.Timezone, After: workflow.Now(ctx),
	}).Get(ctx, &out)
	if err != nil {
		return "", err
	}
	left := out.At.Sub(workflow.Now(ctx))
	if out.At.IsZero() || left <= 0 {
		return "no wait: " + out.Note, nil
	}
	it.waiting(ctx, "best time: "+out.Note+" in "+out.Zone, left)
	err = workflow.NewTimerWithOptions(ctx, left, workflow.TimerOptions{
		Summary: fmt.Sprintf("%s: wait for the best time, %s", step.ID, utc(out.At)),
	}).Get(ctx, nil)
	if err != nil {
		return "", err
	}
	it.state.Status, it.state.WaitingFor, it.state.WaitUntil = contract.StatusRunning, "", nil
	return fmt.Sprintf("waited for %s (%s)", out.Note, out.Zone), nil
}
