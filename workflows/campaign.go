package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
)

const (
	// firingBatchesPerRun bounds the batches one run of a firing takes before it continues as
	// new (each costs about 8 history events).
	firingBatchesPerRun = 300
	// pausedLook is how often a paused firing looks whether its campaign was resumed without
	// hearing so.
	pausedLook = time.Minute
)

// CampaignFiring enters a campaign's segment members into its journey at one firing: it takes
// the members at that moment, then enters them in batches, at most the campaign's rate a
// second, each with a campaign_entered event that the dispatcher turns into a journey start.
// Every step is an activity that is safe to retry, and the members' entries are recorded in the
// CRM, so a firing interrupted anywhere (a worker killed, a starter killed) resumes where it
// was and enters no member twice. A paused campaign's firing waits until it is resumed.
func CampaignFiring(ctx workflow.Context, in contract.CampaignInput) (contract.CampaignResult, error) {
	firing := in.Firing
	if firing == "" {
		firing = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	out := contract.CampaignResult{Firing: firing, Members: in.Members, Entered: in.Entered}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	fi := activities.FiringInput{Campaign: in.Campaign, Firing: firing, At: workflow.Now(ctx)}
	if !in.Begun {
		var start crm.FiringStart
		bctx := workflow.WithActivityOptions(actx, workflow.ActivityOptions{
			StartToCloseTimeout: crm.SnapshotTimeout + time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
			Summary:             "take the segment's members",
		})
		if err := workflow.ExecuteActivity(bctx, a.BeginFiring, fi).Get(ctx, &start); err != nil {
			return out, err
		}
		out.Members = start.Members
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("campaign **%s**: %d members enter **%s**", in.Campaign, start.Members, start.Journey))
	}
	resume := workflow.GetSignalChannel(ctx, contract.SignalResume)
	for {
		began := workflow.Now(ctx)
		var r crm.BatchResult
		// A batch takes a second or so: one cut short by a worker's death is retried soon.
		bctx := workflow.WithActivityOptions(actx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
			Summary:             fmt.Sprintf("enter batch %d", out.Batches+1),
		})
		if err := workflow.ExecuteActivity(bctx, a.EnterCampaignBatch, fi).Get(ctx, &r); err != nil {
			return out, err
		}
		if r.Paused {
			// Until resumed: the resume signal, or a look every minute.
			workflow.NewSelector(ctx).
				AddReceive(resume, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) }).
				AddFuture(workflow.NewTimerWithOptions(ctx, pausedLook, workflow.TimerOptions{Summary: "campaign paused: look again"}), func(workflow.Future) {}).
				Select(ctx)
			out.Paused += workflow.Now(ctx).Sub(began)
			continue
		}
		out.Entered += int64(r.Entered)
		out.Batches++
		if !r.More {
			break
		}
		// At most rate a second: a batch of n takes n/rate seconds.
		if wait := time.Duration(float64(r.Entered)/float64(max(r.Rate, 1))*float64(time.Second)) - workflow.Now(ctx).Sub(began); wait > 0 {
			if err := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: fmt.Sprintf("rate: %d a second", r.Rate)}).Get(ctx, nil); err != nil {
				return out, err
			}
		}
		if out.Batches%firingBatchesPerRun == 0 || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return out, workflow.NewContinueAsNewError(ctx, contract.CampaignFiringType,
				contract.CampaignInput{Campaign: in.Campaign, Firing: firing, Begun: true, Members: out.Members, Entered: out.Entered})
		}
	}
	fi.At = workflow.Now(ctx)
	if err := workflow.ExecuteActivity(actx, a.FinishFiring, fi).Get(ctx, nil); err != nil {
		return out, err
	}
	out.Finished = workflow.Now(ctx)
	return out, nil
}
