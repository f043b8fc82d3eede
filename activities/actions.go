package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/provider"
	"github.com/cairnhq/cairn/telemetry"
)

// ActionInput runs one action step: the step (as written in the journey) for this contact,
// under the workflow's idempotency key for this visit.
type ActionInput struct {
	Key       string       `json:"key"`
	ContactID int64        `json:"contact_id"`
	Step      journey.Step `json:"step"`
	// Journey names the journey the step belongs to, for reasons shown on the contact.
	Journey string `json:"journey"`
	// Policy, on a send_sms or notify step, holds the send to the frequency caps and quiet
	// hours, when set.
	Policy *SendPolicy `json:"policy,omitempty"`
	// Trigger and Event (the run's trigger and latest event) and Timezone (the journey's) are
	// set for the steps whose text is a template: send_sms and notify.
	Trigger  *contract.Event `json:"trigger,omitempty"`
	Event    *contract.Event `json:"event,omitempty"`
	Timezone string          `json:"timezone,omitempty"`
}

// templateData adds to a contact's data what a text template sees besides its fields, as an
// email's (the context: the run's events, tags, cart, order, objects, recommendations).
func (a *Activities) templateData(ctx context.Context, in ActionInput, d email.Data) (email.Data, error) {
	var err error
	d.Journey, d.Step = in.Journey, in.Step.ID
	d.Context, err = crm.TemplateContext(ctx, a.DB, crm.TemplateInput{ContactID: in.ContactID,
		Trigger: templateEvent(in.Trigger), Event: templateEvent(in.Event), Timezone: in.Timezone, Now: a.now()})
	return d, err
}

// RemoveTag removes a tag.
func (a *Activities) RemoveTag(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.RemoveTag(ctx, a.DB, a.action(in.Key, in.ContactID), in.Step.RemoveTag))
}

// UpdateFields sets (or, with null, clears) contact fields.
func (a *Activities) UpdateFields(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.UpdateFields(ctx, a.DB, a.action(in.Key, in.ContactID), in.Step.UpdateFields))
}

// AdjustScore adds points to a score.
func (a *Activities) AdjustScore(ctx context.Context, in ActionInput) (ActionOutput, error) {
	sc := in.Step.AdjustScore
	return output(crm.AdjustScore(ctx, a.DB, a.action(in.Key, in.ContactID), sc.Score, sc.By, fmt.Sprintf("journey %s step %s", in.Journey, in.Step.ID)))
}

// Subscribe subscribes the contact to a list.
func (a *Activities) Subscribe(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.SetSubscription(ctx, a.DB, a.action(in.Key, in.ContactID), in.Step.Subscribe, true))
}

// Unsubscribe unsubscribes the contact from a list.
func (a *Activities) Unsubscribe(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.SetSubscription(ctx, a.DB, a.action(in.Key, in.ContactID), in.Step.Unsubscribe, false))
}

// CreateDeal opens a deal.
func (a *Activities) CreateDeal(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.CreateDeal(ctx, a.DB, a.action(in.Key, in.ContactID), *in.Step.CreateDeal))
}

// MoveDeal moves the contact's open deal to another stage.
func (a *Activities) MoveDeal(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.MoveDeal(ctx, a.DB, a.action(in.Key, in.ContactID), in.Step.MoveDeal.Pipeline, in.Step.MoveDeal.Stage))
}

// CreateTask creates a task for a sales rep.
func (a *Activities) CreateTask(ctx context.Context, in ActionInput) (ActionOutput, error) {
	t := in.Step.CreateTask
	var due time.Duration
	if t.DueIn != nil {
		due = t.DueIn.D
	}
	return output(crm.CreateTask(ctx, a.DB, a.action(in.Key, in.ContactID), t.Title, t.Assignee, due))
}

// AddNote adds a note to the contact.
func (a *Activities) AddNote(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.AddNote(ctx, a.DB, a.action(in.Key, in.ContactID), in.Step.AddNote))
}

// StartJourney asks the dispatcher to start another journey for the contact.
func (a *Activities) StartJourney(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(crm.RequestJourney(ctx, a.DB, a.action(in.Key, in.ContactID), in.Step.StartJourney))
}

// ErrTypeNotReady marks a delivery that cannot happen yet: its provider has no configuration,
// or its template does not exist. The error is retryable: the step waits, retried with
// backoff (Temporal UI shows the reason as the pending activity's last failure), and goes on
// once the setting or the template is there.
const ErrTypeNotReady = "DeliveryNotReady"

// SendSMS sends a text message to the contact's phone field through the SMS provider.
func (a *Activities) SendSMS(ctx context.Context, in ActionInput) (out ActionOutput, err error) {
	defer func() { countSend("sms", out, err) }()
	if a.SMS == nil {
		return ActionOutput{}, notConfigured("SMS", "CAIRN_SMS_ACCOUNT, CAIRN_SMS_TOKEN and CAIRN_SMS_FROM")
	}
	return a.external(ctx, in, "sms_sent", func(d email.Data) (map[string]any, error) {
		phone, _ := d.Fields["phone"].(string)
		if phone == "" {
			return nil, permanent(fmt.Errorf("contact %d has no phone field", in.ContactID))
		}
		d, err := a.templateData(ctx, in, d)
		if err != nil {
			return nil, err
		}
		body, err := email.RenderText(in.Step.SendSMS.Text, d)
		if err != nil {
			return nil, permanent(err)
		}
		sid, err := a.SMS.Send(ctx, in.Key, phone, body)
		if err != nil {
			return nil, err
		}
		return map[string]any{"sid": sid}, nil // no number: this is the run's activity result
	}, true)
}

// Notify notifies team members through the notification webhook.
func (a *Activities) Notify(ctx context.Context, in ActionInput) (out ActionOutput, err error) {
	defer func() { countSend("notify", out, err) }()
	if a.Notifier == nil {
		return ActionOutput{}, notConfigured("team notification", "CAIRN_NOTIFY_URL")
	}
	return a.external(ctx, in, "team_notified", func(d email.Data) (map[string]any, error) {
		d, err := a.templateData(ctx, in, d)
		if err != nil {
			return nil, err
		}
		text, err := email.RenderText(in.Step.Notify.Text, d)
		if err != nil {
			return nil, permanent(err)
		}
		if err := a.Notifier.Send(ctx, in.Key, in.Step.Notify.Channel, text); err != nil {
			return nil, err
		}
		return map[string]any{"channel": in.Step.Notify.Channel, "text": text}, nil
	}, false)
}

// AddToAudience adds the contact (hashed email) to an ad platform custom audience.
func (a *Activities) AddToAudience(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return a.audience(ctx, in, in.Step.AddToAudience, true)
}

// RemoveFromAudience removes the contact from an ad platform custom audience.
func (a *Activities) RemoveFromAudience(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return a.audience(ctx, in, in.Step.RemoveFromAudience, false)
}

func (a *Activities) audience(ctx context.Context, in ActionInput, id string, add bool) (out ActionOutput, err error) {
	defer func() { countSend("audience", out, err) }()
	if a.Audience == nil {
		return ActionOutput{}, notConfigured("custom audience", "CAIRN_AUDIENCE_TOKEN")
	}
	event := "audience_removed"
	if add {
		event = "audience_added"
	}
	return a.external(ctx, in, event, func(d email.Data) (map[string]any, error) {
		if d.Contact.Email == "" {
			return nil, permanent(fmt.Errorf("contact %d has no email address to match in the audience", in.ContactID))
		}
		if err := a.Audience.Change(ctx, id, d.Contact.Email, add); err != nil {
			return nil, err
		}
		return map[string]any{"audience": id}, nil
	}, false)
}

// external runs a provider call once per key: the ledger row says 'sending' before the call
// and 'done' after. A refusal (4xx, or a contact that cannot get it) releases the row and
// fails the step for good; other failures keep it and are retried (with the same key, which
// the provider dedupes where its API takes one).
func (a *Activities) external(ctx context.Context, in ActionInput, event string, call func(email.Data) (map[string]any, error), marketing bool) (ActionOutput, error) {
	var check *crm.SendCheck
	if ch, _, ok := in.Step.Delivery(); ok {
		check = a.check(in.Policy, ch, in.Journey, in.Step.ID)
	}
	ex, err := crm.ClaimExternal(ctx, a.DB, in.Key, in.Step.Kind(), in.ContactID, check)
	if err != nil {
		return output(crm.ActionResult{}, err)
	}
	if ex.Done {
		return ActionOutput{Replayed: true, Detail: ex.Result}, nil
	}
	if ex.Deferred != nil {
		return ActionOutput{Deferred: ex.Deferred}, nil
	}
	if marketing && ex.Unsubscribed {
		_ = crm.ReleaseExternal(ctx, a.DB, in.Key)
		return ActionOutput{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("contact %d has unsubscribed", in.ContactID), ErrTypeRejected, nil)
	}
	start := time.Now()
	result, err := call(ex.Data)
	telemetry.Since(telemetry.ProviderCallDuration.WithLabelValues(channelOf(in.Step.Kind()), providerOutcome(err)), start)
	var rejected *provider.Rejected
	var perm *permanentError
	switch {
	case errors.As(err, &rejected), errors.As(err, &perm):
		if rerr := crm.ReleaseExternal(ctx, a.DB, in.Key); rerr != nil {
			return ActionOutput{}, rerr
		}
		return ActionOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRejected, err)
	case err != nil:
		return ActionOutput{}, fmt.Errorf("%s: %w", in.Step.Kind(), err)
	}
	out, err := crm.CompleteExternal(ctx, a.DB, a.action(in.Key, in.ContactID), event, result)
	if err != nil {
		return ActionOutput{}, err
	}
	return ActionOutput{Detail: out}, nil
}

// channelOf names a delivery step's provider: sms, notify or audience.
func channelOf(kind string) string {
	switch kind {
	case journey.KindSendSMS:
		return "sms"
	case journey.KindNotify:
		return "notify"
	}
	return "audience"
}

type permanentError struct{ error }

func (e *permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return &permanentError{err} }

func notConfigured(what, env string) error {
	return notReady(fmt.Sprintf("no %s provider is configured (set %s on the worker); the step waits until one is", what, env))
}

func notReady(reason string) error {
	return temporal.NewApplicationError(reason, ErrTypeNotReady)
}
