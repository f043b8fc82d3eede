package starter

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"

	"github.com/cairnhq/cairn/crm"
)

// A run that continues as new (a long run, a migration) is a chain of executions: the CRM
// knows it by the first run's id, which Temporal closes at the first continue-as-new. These
// follow the chain to the execution open now.

// describeChain describes the chain that started with firstRunID: its open execution if it is
// still going, otherwise the execution the CRM knows (closed).
func describeChain(ctx context.Context, tc client.Client, workflowID, firstRunID string) (*workflowpb.WorkflowExecutionInfo, error) {
	desc, err := tc.DescribeWorkflowExecution(ctx, workflowID, firstRunID)
	if err != nil {
		return nil, err
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
		return info, nil
	}
	latest, err := tc.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return nil, err
	}
	if l := latest.GetWorkflowExecutionInfo(); l.GetFirstRunId() == firstRunID {
		return l, nil
	}
	return info, nil // a later chain of the same workflow id: this one is over
}

// signalChain signals the open execution of the chain that started with firstRunID; a chain
// that is over answers NotFound, as a closed run does.
func signalChain(ctx context.Context, tc client.Client, workflowID, firstRunID, name string, arg any) error {
	err := tc.SignalWorkflow(ctx, workflowID, firstRunID, name, arg)
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		return err
	}
	info, derr := describeChain(ctx, tc, workflowID, firstRunID)
	if derr != nil || info.GetCloseTime() != nil {
		return err
	}
	return tc.SignalWorkflow(ctx, workflowID, info.GetExecution().GetRunId(), name, arg)
}

// enrollRun records the run a SignalWithStart reached. SignalWithStart answers with the
// execution open now, which is a later one when the run has continued as new (a long run, a
// migrated one): the CRM's open enrollment then names the chain's first run, and keeps it.
func (d *Dispatcher) enrollRun(ctx context.Context, j crm.JourneyVersion, ev crm.Event, runKey, workflowID, runID string) error {
	open, err := crm.EnrollUnlessOpen(ctx, d.DB, j.JourneyID, ev.ContactID, runKey, j.Version, workflowID, runID, ev.ID, d.Clock.Now())
	if err != nil || open == "" {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	desc, err := d.Temporal.DescribeWorkflowExecution(callCtx, workflowID, runID)
	cancel()
	if err != nil {
		return fmt.Errorf("describe %s: %w", workflowID, err)
	}
	if desc.GetWorkflowExecutionInfo().GetFirstRunId() == open {
		runID = open
	}
	return crm.Enroll(ctx, d.DB, j.JourneyID, ev.ContactID, runKey, j.Version, workflowID, runID, ev.ID, d.Clock.Now())
}
