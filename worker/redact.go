package worker

import (
	"context"

	"go.temporal.io/sdk/interceptor"

	"github.com/cairnhq/cairn/activities"
)

// redactor strips email addresses and phone numbers from activity errors before the SDK logs
// them or records them in a history (see activities.RedactError).
type redactor struct {
	interceptor.WorkerInterceptorBase
}

func (*redactor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	r := &redactActivity{}
	r.Next = next
	return r
}

type redactActivity struct {
	interceptor.ActivityInboundInterceptorBase
}

func (r *redactActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := r.Next.ExecuteActivity(ctx, in)
	return res, activities.RedactError(err)
}
