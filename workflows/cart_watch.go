package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
)

// CartInput starts a CartWatch for a contact.
type CartInput struct {
	ContactID int64         `json:"contact_id"`
	Idle      time.Duration `json:"idle"`
}

// CartState is CartWatch's result: what happened to the cart.
type CartState struct {
	Outcome  string         `json:"outcome"` // abandoned or converted
	LastCart map[string]any `json:"last_cart,omitempty"`
	Updates  int            `json:"updates"`
}

// CartWatch detects abandoned carts on Cairn's side: every cart event restarts an idle timer;
// an order ends the watch; a timer that runs out records cart_abandoned, which journeys can
// trigger on, whether or not the shop reports abandonment itself.
func CartWatch(ctx workflow.Context, in CartInput) (CartState, error) {
	st := CartState{}
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrContact.ValueSet(fmt.Sprint(in.ContactID))); err != nil {
		return st, err
	}
	events := workflow.GetSignalChannel(ctx, SignalEvent)
	for {
		timerCtx, cancel := workflow.WithCancel(ctx)
		timer := workflow.NewTimerWithOptions(timerCtx, in.Idle, workflow.TimerOptions{Summary: "cart idle for " + in.Idle.String()})
		var ev Event
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &ev) })
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		cancel()
		if fired {
			break
		}
		if ev.Name == OrderCompleted {
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
