package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/journey"
)

// triggerContextVersion guards what a run does with its trigger event (the first event it
// hears, the one that started it): keyed conditions ({cart_id: {trigger: cart_id}}) are
// checked against its properties, and emails are rendered with it and with the latest event
// the run heard. From version 1 the trigger is taken from the signal channel before the first
// step, so that a first step that checks a keyed condition already has it, and it is carried
// across continue-as-new.
const triggerContextVersion = "trigger-context"

// takeTrigger decides the run's trigger-context version and, from version 1, reads the
// trigger: from the continued run's state, or the signal that came with the start.
func (it *interpreter) takeTrigger(ctx workflow.Context, events workflow.ReceiveChannel) {
	it.cv = it.version(ctx, triggerContextVersion)
	if it.cv < 1 {
		return
	}
	if r := it.in.Resume; r != nil {
		it.trigger = r.Trigger
		return
	}
	var ev contract.Event
	if events.ReceiveAsync(&ev) {
		it.record(ctx, ev)
	}
}

// noteTrigger keeps the first event the run hears as its trigger.
func (it *interpreter) noteTrigger(ev contract.Event) {
	if it.cv >= 1 && it.trigger == nil {
		t := ev
		it.trigger = &t
	}
}

// triggerProperties are the trigger's properties, for keyed conditions (nil without one).
func (it *interpreter) triggerProperties() map[string]any {
	if it.trigger == nil {
		return nil
	}
	if it.trigger.Properties == nil {
		return map[string]any{}
	}
	return it.trigger.Properties
}

// latestEvent is the last event the run heard (nil before any), for email templates.
func (it *interpreter) latestEvent() *contract.Event {
	if it.cv < 1 || len(it.log) == 0 {
		return nil
	}
	ev := it.log[len(it.log)-1].ev
	return &ev
}

// timezone is the journey's time zone for emails, from the trigger-context version on.
func (it *interpreter) timezone() string {
	if it.cv < 1 {
		return ""
	}
	return it.in.Journey.Timezone
}

// triggerID is the id of the event that started the run (0 before the trigger-context
// version, or without one).
func (it *interpreter) triggerID() int64 {
	if it.trigger == nil {
		return 0
	}
	return it.trigger.ID
}

// textTemplate gives a step whose text is a template (send_sms, notify) what it is rendered
// with besides the contact: the trigger, the latest event, the journey's time zone.
func (it *interpreter) textTemplate(step journey.Step, in *activities.ActionInput) {
	if k := step.Kind(); k == journey.KindSendSMS || k == journey.KindNotify {
		in.Trigger, in.Event, in.Timezone = it.trigger, it.latestEvent(), it.timezone()
	}
}
