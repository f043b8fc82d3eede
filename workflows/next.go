package workflows

import (
	"strings"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
)

// stateNow is the state query's answer: the run's state with what comes next.
func (it *interpreter) stateNow() contract.State {
	s := it.state
	s.Next = it.next()
	return s
}

// over says the run has finished (completed, exited or failed).
func (it *interpreter) over() bool {
	switch it.state.Status {
	case contract.StatusCompleted, contract.StatusExited, contract.StatusFailed:
		return true
	}
	return false
}

// next says which step follows the one the contact is at, and when: worked out from the
// journey and the state when asked, so it costs the run nothing.
func (it *interpreter) next() *contract.Next {
	st := &it.state
	if it.over() || st.CurrentStep == "" {
		return nil
	}
	j := &it.in.Journey
	if st.Status == contract.StatusWaiting && strings.HasPrefix(st.WaitingFor, "goal ") {
		// A goal's wait: the contact then takes the goal's step, where it waits.
		return &contract.Next{Step: st.CurrentStep, At: st.WaitUntil, On: "goal"}
	}
	step := j.Step(st.CurrentStep)
	if step == nil {
		return nil
	}
	after := j.StepAfter(step.ID)
	if st.Status != contract.StatusWaiting {
		return &contract.Next{Step: after, On: "step"}
	}
	switch step.Kind() {
	case journey.KindWait:
		return &contract.Next{Step: after, At: st.WaitUntil, On: "timer"}
	case journey.KindDate:
		return &contract.Next{Step: after, At: st.WaitUntil, On: "date"}
	case journey.KindWindow:
		return &contract.Next{Step: after, At: st.WaitUntil, On: "window"}
	case journey.KindWaitUntil:
		met := j.FirstOr(step.Then, step.ID)
		if step.WaitUntil.Timeout == nil {
			return &contract.Next{Step: met, On: "condition"}
		}
		return &contract.Next{Step: j.FirstOr(step.Else, step.ID), At: st.WaitUntil, On: "timeout", IfMet: met}
	}
	return &contract.Next{Step: after, On: "step"}
}
