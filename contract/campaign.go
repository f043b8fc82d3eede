package contract

import "time"

// Campaign firings. A campaign's Temporal Schedule (CampaignScheduleID) starts a CampaignFiring
// workflow at each firing, with workflow ID CampaignWorkflowID (Temporal appends the firing's
// time: campaign:spring-sale-2026-04-01T09:00:00Z), which is also the firing's id in the CRM.
// Its payloads belong to no contact (the codec's shared data key).
const (
	CampaignFiringType = "CampaignFiring"
	// SignalResume tells a firing that its campaign was resumed (it also looks every minute).
	SignalResume = "resume"
)

// CampaignScheduleID is the Temporal Schedule of a campaign: cairn-campaign-<id>.
func CampaignScheduleID(campaignID string) string { return "cairn-campaign-" + campaignID }

// CampaignWorkflowID is the workflow ID a campaign's schedule starts its firings with.
func CampaignWorkflowID(campaignID string) string { return "campaign:" + campaignID }

// CampaignInput starts (or continues) a firing.
type CampaignInput struct {
	Campaign string `json:"campaign"`
	// Firing is the firing's id, carried when it continues as new (else its workflow ID).
	Firing string `json:"firing,omitempty"`
	// Begun says the members were taken already (a firing that continued as new).
	Begun   bool  `json:"begun,omitempty"`
	Members int64 `json:"members,omitempty"`
	Entered int64 `json:"entered,omitempty"`
}

// CampaignResult is how a firing went.
type CampaignResult struct {
	Firing   string        `json:"firing"`
	Members  int64         `json:"members"`
	Entered  int64         `json:"entered"`
	Batches  int           `json:"batches"`
	Paused   time.Duration `json:"paused,omitempty"`
	Finished time.Time     `json:"finished"`
}
