package journey

import (
	"fmt"
	"sort"
	"strings"
)

// Action step kinds beyond add_tag and send_email: CRM effects and deliveries. Each runs as
// one idempotent activity.
const (
	KindRemoveTag          = "remove_tag"
	KindUpdateFields       = "update_fields"
	KindAdjustScore        = "adjust_score"
	KindSubscribe          = "subscribe"
	KindUnsubscribe        = "unsubscribe"
	KindCreateDeal         = "create_deal"
	KindMoveDeal           = "move_deal"
	KindCreateTask         = "create_task"
	KindAddNote            = "add_note"
	KindStartJourney       = "start_journey"
	KindSendSMS            = "send_sms"
	KindNotify             = "notify"
	KindAddToAudience      = "add_to_audience"
	KindRemoveFromAudience = "remove_from_audience"
)

// ActionKinds lists every action a step can take.
var ActionKinds = []string{KindAddTag, KindRemoveTag, KindSendEmail, KindSendSMS, KindUpdateFields, KindAdjustScore,
	KindSubscribe, KindUnsubscribe, KindCreateDeal, KindMoveDeal, KindCreateTask, KindAddNote, KindNotify,
	KindAddToAudience, KindRemoveFromAudience, KindStartJourney}

// ScoreChange adds By points (negative to remove) to a score ("" is the default score).
type ScoreChange struct {
	By    float64 `json:"by"`
	Score string  `json:"score,omitempty"`
}

// Deal is a CRM deal created for the contact.
type Deal struct {
	Title    string  `json:"title"`
	Pipeline string  `json:"pipeline"`
	Stage    string  `json:"stage"`
	Value    float64 `json:"value,omitempty"`
	Currency string  `json:"currency,omitempty"`
	Owner    string  `json:"owner,omitempty"`
}

// DealMove moves the contact's newest open deal in Pipeline to Stage.
type DealMove struct {
	Pipeline string `json:"pipeline"`
	Stage    string `json:"stage"`
}

// Task is a to-do for a sales rep about the contact.
type Task struct {
	Title    string    `json:"title"`
	Assignee string    `json:"assignee"`
	DueIn    *Duration `json:"due_in,omitempty"`
}

// Message is the text of an SMS or a team notification (Channel names where it goes).
type Message struct {
	Text    string `json:"text"`
	Channel string `json:"channel,omitempty"`
	SendRules
}

// actionKind names the action step kinds added in this file, or "".
func (s Step) actionKind() string {
	switch {
	case s.RemoveTag != "":
		return KindRemoveTag
	case s.UpdateFields != nil:
		return KindUpdateFields
	case s.AdjustScore != nil:
		return KindAdjustScore
	case s.Subscribe != "":
		return KindSubscribe
	case s.Unsubscribe != "":
		return KindUnsubscribe
	case s.CreateDeal != nil:
		return KindCreateDeal
	case s.MoveDeal != nil:
		return KindMoveDeal
	case s.CreateTask != nil:
		return KindCreateTask
	case s.AddNote != "":
		return KindAddNote
	case s.StartJourney != "":
		return KindStartJourney
	case s.SendSMS != nil:
		return KindSendSMS
	case s.Notify != nil:
		return KindNotify
	case s.AddToAudience != "":
		return KindAddToAudience
	case s.RemoveFromAudience != "":
		return KindRemoveFromAudience
	}
	return ""
}

func (s Step) actionSummary() string {
	switch s.actionKind() {
	case KindRemoveTag:
		return "remove tag " + s.RemoveTag
	case KindUpdateFields:
		keys := make([]string, 0, len(s.UpdateFields))
		for k := range s.UpdateFields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "update " + strings.Join(keys, ", ")
	case KindAdjustScore:
		name := "score"
		if s.AdjustScore.Score != "" {
			name = "score " + s.AdjustScore.Score
		}
		return fmt.Sprintf("%s %+g", name, s.AdjustScore.By)
	case KindSubscribe:
		return "subscribe to " + s.Subscribe
	case KindUnsubscribe:
		return "unsubscribe from " + s.Unsubscribe
	case KindCreateDeal:
		return fmt.Sprintf("create deal %q in %s/%s", s.CreateDeal.Title, s.CreateDeal.Pipeline, s.CreateDeal.Stage)
	case KindMoveDeal:
		return fmt.Sprintf("move deal to %s/%s", s.MoveDeal.Pipeline, s.MoveDeal.Stage)
	case KindCreateTask:
		return fmt.Sprintf("task for %s: %s", s.CreateTask.Assignee, s.CreateTask.Title)
	case KindAddNote:
		return "add note"
	case KindStartJourney:
		return "start journey " + s.StartJourney
	case KindSendSMS:
		return "send SMS"
	case KindNotify:
		return "notify team"
	case KindAddToAudience:
		return "add to audience " + s.AddToAudience
	case KindRemoveFromAudience:
		return "remove from audience " + s.RemoveFromAudience
	}
	return ""
}
