package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
)

// DateScheduler is started every hour by the cairn-date-triggers Temporal Schedule: it
// records date_reached events (birthdays, renewals, "3 days before") that date_field
// triggers start journeys from, re-checks the segments journeys trigger on (for conditions
// that time alone changes), and takes back expired scoring-rule points.
func DateScheduler(ctx workflow.Context) (activities.ScanDatesOutput, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		Summary:             "record dates reached",
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 5 * time.Minute},
	})
	var out activities.ScanDatesOutput
	if err := workflow.ExecuteActivity(ctx, a.ScanDates, workflow.Now(ctx)).Get(ctx, &out); err != nil {
		return out, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		Summary:             "re-check segments",
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 5 * time.Minute},
	})
	var changes map[string]int64
	if err := workflow.ExecuteActivity(ctx, a.RecheckSegments, workflow.Now(ctx)).Get(ctx, &changes); err != nil {
		return out, err
	}
	var expired int
	err := workflow.ExecuteActivity(ctx, a.ExpireScores, workflow.Now(ctx)).Get(ctx, &expired)
	return out, err
}
