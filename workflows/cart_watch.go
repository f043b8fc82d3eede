package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
)

// CartWatch detects abandoned carts on Cairn's side: every cart event restarts an idle timer;
// an order ends the watch; a timer that runs out records cart_abandoned, which journeys can
// trigger on, whether or not the shop reports abandonment itself.
func CartWatch(ctx workflow.Context, in contract.CartInput) (contract.CartState, error) {
	st := contract.CartState{}
	// The contact's own id (Cairn's number for watches started before the starter passed it).
	who := in.Contact
	if who == "" {
		who = fmt.Sprint(in.ContactID)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, contract.AttrContact.ValueSet(who)); err != nil {
		return st, err
	}
	events := workflow.GetSignalChannel(ctx, contract.SignalEvent)
	for {
		timerCtx, cancel := workflow.WithCancel(ctx)
		timer := workflow.NewTimerWithOptions(timerCtx, in.Idle, workflow.TimerOptions{Summary: "cart idle for " + in.Idle.String()})
		var ev contract.Event
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &ev) })
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		cancel()
		if fired {
			break
		}
		if ev.Name == journey.EventOrderCompleted {
			st.Outcome = "converted"
			return st, nil
		}
		st.Updates++
		st.LastCart = ev.Properties
	}
	st.Outcome = "abandoned"
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		Summary:             "record cart_abandoned",
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	info := workflow.GetInfo(ctx)
	err := workflow.ExecuteActivity(actx, a.RecordCartAbandoned, activities.CartAbandonedInput{
		Key:       info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID + "/abandoned",
		ContactID: in.ContactID, Cart: st.LastCart, Idle: in.Idle,
	}).Get(ctx, nil)
	return st, err
}
