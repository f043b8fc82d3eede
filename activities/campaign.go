package activities

import (
	"context"
	"time"

	"github.com/cairnhq/cairn/crm"
)

// FiringInput names a campaign's firing.
type FiringInput struct {
	Campaign string    `json:"campaign"`
	Firing   string    `json:"firing"`
	At       time.Time `json:"at"`
}

// BeginFiring records the firing and takes the campaign's segment members at this moment, once.
func (a *Activities) BeginFiring(ctx context.Context, in FiringInput) (crm.FiringStart, error) {
	out, err := crm.BeginFiring(ctx, a.DB, in.Campaign, in.Firing, in.At)
	return out, output2(err)
}

// EnterCampaignBatch enters the next batch of the firing's members: a campaign_entered event
// each, which the dispatcher turns into the journey's start. Safe to retry: a member enters
// once per firing.
func (a *Activities) EnterCampaignBatch(ctx context.Context, in FiringInput) (crm.BatchResult, error) {
	out, err := crm.EnterCampaignBatch(ctx, a.DB, in.Firing, a.now())
	return out, output2(err)
}

// FinishFiring records that the firing has entered every member.
func (a *Activities) FinishFiring(ctx context.Context, in FiringInput) error {
	return crm.FinishFiring(ctx, a.DB, in.Firing, in.At)
}
