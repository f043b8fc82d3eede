package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/journey"
)

// ActionInput runs one action step: the step (as written in the journey) for this contact,
// under the workflow's idempotency key for this visit.
type ActionInput struct {
	Key       string       `json:"key"`
	ContactID int64        `json:"contact_id"`
	Step      journey.Step `json:"step"`
	// Journey names the journey the step belongs to, for reasons shown on the contact.
	Journey string `json:"journey"`
}

// RemoveTag removes a tag.
func (a *Activities) RemoveTag(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.RemoveTag(ctx, in.Key, in.ContactID, in.Step.RemoveTag))
}

// UpdateFields sets (or, with null, clears) contact fields.
func (a *Activities) UpdateFields(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.UpdateFields(ctx, in.Key, in.ContactID, in.Step.UpdateFields))
}

// AdjustScore adds points to a score.
func (a *Activities) AdjustScore(ctx context.Context, in ActionInput) (ActionOutput, error) {
	sc := in.Step.AdjustScore
	return output(a.Store.AdjustScore(ctx, in.Key, in.ContactID, sc.Score, sc.By, fmt.Sprintf("journey %s step %s", in.Journey, in.Step.ID)))
}

// Subscribe subscribes the contact to a list.
func (a *Activities) Subscribe(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.SetSubscription(ctx, in.Key, in.ContactID, in.Step.Subscribe, true))
}

// Unsubscribe unsubscribes the contact from a list.
func (a *Activities) Unsubscribe(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.SetSubscription(ctx, in.Key, in.ContactID, in.Step.Unsubscribe, false))
}

// CreateDeal opens a deal.
func (a *Activities) CreateDeal(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.CreateDeal(ctx, in.Key, in.ContactID, *in.Step.CreateDeal))
}

// MoveDeal moves the contact's open deal to another stage.
func (a *Activities) MoveDeal(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.MoveDeal(ctx, in.Key, in.ContactID, in.Step.MoveDeal.Pipeline, in.Step.MoveDeal.Stage))
}

// CreateTask creates a task for a sales rep.
func (a *Activities) CreateTask(ctx context.Context, in ActionInput) (ActionOutput, error) {
	t := in.Step.CreateTask
	var due time.Duration
	if t.DueIn != nil {
		due = t.DueIn.D
	}
	return output(a.Store.CreateTask(ctx, in.Key, in.ContactID, t.Title, t.Assignee, due))
}

// AddNote adds a note to the contact.
func (a *Activities) AddNote(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.AddNote(ctx, in.Key, in.ContactID, in.Step.AddNote))
}

// StartJourney asks the dispatcher to start another journey for the contact.
func (a *Activities) StartJourney(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return output(a.Store.RequestJourney(ctx, in.Key, in.ContactID, in.Step.StartJourney))
}

// ErrTypeNotConfigured marks a delivery whose provider has no configuration.
const ErrTypeNotConfigured = "ProviderNotConfigured"

// SendSMS sends a text message through the configured SMS provider.
func (a *Activities) SendSMS(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return ActionOutput{}, notConfigured("SMS", "CAIRN_SMS_URL")
}

// Notify notifies team members through the configured notification provider.
func (a *Activities) Notify(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return ActionOutput{}, notConfigured("team notification", "CAIRN_NOTIFY_URL")
}

// AddToAudience adds the contact to an ad platform custom audience.
func (a *Activities) AddToAudience(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return ActionOutput{}, notConfigured("custom audience", "CAIRN_AUDIENCE_URL")
}

// RemoveFromAudience removes the contact from an ad platform custom audience.
func (a *Activities) RemoveFromAudience(ctx context.Context, in ActionInput) (ActionOutput, error) {
	return ActionOutput{}, notConfigured("custom audience", "CAIRN_AUDIENCE_URL")
}

func notConfigured(what, env string) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("no %s provider is configured (set %s); the step cannot run", what, env), ErrTypeNotConfigured, nil)
}
