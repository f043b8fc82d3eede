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

// firstRunOf is the id the CRM knows a run reached by SignalWithStart by: the first run of
// its chain. SignalWithStart answers with the execution open now, which is a later one when
// the run has continued as new (a long run, a migrated one); the CRM's open enrollment then
// names the chain's first run.
func (d *Dispatcher) firstRunOf(ctx context.Context, journeyID string, contactID int64, runKey, workflowID, runID string) (string, error) {
	last, err := crm.EnrollmentOf(ctx, d.DB, journeyID, contactID, runKey)
	if err != nil || last == nil || last.EndedAt != nil || last.RunID == runID {
		return runID, err
	}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	desc, err := d.Temporal.DescribeWorkflowExecution(callCtx, workflowID, runID)
	if err != nil {
		return runID, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	if desc.GetWorkflowExecutionInfo().GetFirstRunId() == last.RunID {
		return last.RunID, nil
	}
	return runID, nil
}
