// Package contract holds every name Temporal shows for Cairn — task queue, workflow types and
// IDs, signals, queries, search attributes — and the shapes that cross it (a run's input, the
// events it hears, the state it answers with). It imports only the journey language, so the
// starter, the cluster check and tools need not import the interpreter to speak to its runs.
package contract

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/journey"
)

// Names users see in Temporal UI, dashboards and `temporal workflow list` queries. Changing any
// of them breaks those users.
const (
	// TaskQueue is where ContactJourney workflows and their activities run.
	TaskQueue = "cairn-journeys"
	// WorkflowType is the registered name of ContactJourney.
	WorkflowType = "ContactJourney"
	// SignalEvent delivers a contact event (a journey's trigger, or anything that happens to
	// the contact while the journey runs).
	SignalEvent = "event"
	// QueryState answers with State.
	QueryState = "state"
	// CartWatchType is the workflow that detects abandoned carts, one per contact.
	CartWatchType = "CartWatch"
	// DateSchedulerType is the hourly workflow behind date_field triggers, and
	// DateScheduleID the Temporal Schedule that starts it.
	DateSchedulerType = "DateScheduler"
	DateScheduleID    = "cairn-date-triggers"
)

// Change IDs of workflow.GetVersion: each names a change to ContactJourney that recorded
// histories from before it must replay without. They are written into histories as markers.
const (
	// VersionSendPolicy: send steps tell their activity the journey's send policy, and a send
	// the policy defers waits on a timer until it is allowed. Runs from before send unheld.
	VersionSendPolicy = "send-policy"
)

// Revision is the behaviour revision Cairn starts ContactJourney runs at (Input.Revision).
// Revision 1 turns on, without a version marker each, every change listed in workflows'
// revisions: event-path, trigger-context, run-control and send-policy. A GetVersion marker
// also upserts the TemporalChangeVersion search attribute, so each cost every run one more
// history event and one more visibility write; the revision, read from the run's input,
// costs neither. Runs started without one (0) keep deciding each change by GetVersion.
const Revision = 1

// CartWatchID is the cart watch of a contact: cart:<contactID>.
func CartWatchID(contactID int64) string {
	return fmt.Sprintf("cart:%d", contactID)
}

// Custom search attributes. dev registers them; worker checks they exist.
var (
	AttrJourney        = temporal.NewSearchAttributeKeyKeyword("CairnJourney")
	AttrContact        = temporal.NewSearchAttributeKeyKeyword("CairnContact")
	AttrStep           = temporal.NewSearchAttributeKeyKeyword("CairnStep")
	AttrJourneyVersion = temporal.NewSearchAttributeKeyInt64("CairnJourneyVersion")
	// AttrContactIDs holds every id the contact is known by in the sending systems: its user
	// id and the anonymous ids ("anon:<id>") it had before an alias. Never an email address.
	AttrContactIDs = temporal.NewSearchAttributeKeyKeywordList("CairnContactIDs")
)

// SearchAttributes maps each custom search attribute to its type, for registration and checks.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	AttrJourney.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	AttrContact.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	AttrStep.GetName():           enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	AttrJourneyVersion.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
	AttrContactIDs.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}

// WorkflowID is the one open run per contact per journey: journey:<journeyID>:<contactID>.
func WorkflowID(journeyID string, contactID int64) string {
	return fmt.Sprintf("journey:%s:%d", journeyID, contactID)
}

// The state query's current step of a run that is over: it finished its steps (or an end
// step), or its exit condition took it out. Runs from before the event path also wrote these
// to CairnStep.
const (
	StepEnded  = "(ended)"
	StepExited = "(exited)"
)

// Input starts a ContactJourney. The journey definition travels with it, pinning the version
// for the life of the run: replay never depends on what the database says today.
type Input struct {
	Journey   journey.Journey `json:"journey"`
	Version   int             `json:"version"`
	ContactID int64           `json:"contact_id"`
	// Resume is set when a run continues as new: where to pick up, and what it carries.
	Resume *Resume `json:"resume,omitempty"`
	// HistoryLimit makes the run continue as new past this many history events (0: the
	// default, 10,000; Temporal's own suggestion applies either way).
	HistoryLimit int `json:"history_limit,omitempty"`
	// Checked, when set, is what the starter found of the journey's exit and goal conditions
	// as it started the run, so the run does not ask the CRM again before its first step.
	Checked *EntryChecks `json:"checked,omitempty"`
	// Revision is the behaviour revision the run was started at (Revision; 0: from before
	// revisions, deciding each change by a GetVersion marker). It is carried across
	// continue-as-new and migration, as the rest of the input is.
	Revision int `json:"revision,omitempty"`
}

// EntryChecks are a journey's exit and goal conditions for a contact at the moment its run
// starts.
type EntryChecks struct {
	Exited   bool     `json:"exited,omitempty"`
	GoalsMet []string `json:"goals_met,omitempty"`
}

// Resume is the state a run carries across continue-as-new.
type Resume struct {
	Next      int            `json:"next"`
	EnteredAt time.Time      `json:"entered_at"`
	Visits    map[string]int `json:"visits,omitempty"`
	GoalsMet  []string       `json:"goals_met,omitempty"`
	Events    []Event        `json:"events,omitempty"`
	Path      []Visit        `json:"path,omitempty"`
	// Heard are the ids of the latest events the run heard, so a repeated delivery after
	// continue-as-new is still recognised.
	Heard []int64 `json:"heard,omitempty"`
	// Trigger is the event that started the run (keyed conditions compare with it).
	Trigger *Event `json:"trigger,omitempty"`
	// Migrated names the migration that moved the run to this version; Deadline, then, is
	// when the wait it was in ends, which the step at Next keeps when it is a wait of the same
	// kind; Step is the CairnStep value the run already holds.
	Migrated int64      `json:"migrated,omitempty"`
	Deadline *time.Time `json:"deadline,omitempty"`
	Step     string     `json:"step,omitempty"`
}

// Event is a contact event as delivered by SignalEvent.
type Event struct {
	ID         int64          `json:"id"`
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
	OccurredAt time.Time      `json:"occurred_at"`
	// Changed lists the contact fields the event changed: a run waiting on a field test hears
	// it whatever the event's name.
	Changed []string `json:"changed,omitempty"`
	// ContactIDs, on an alias event, is every id the contact is now known by; the run keeps
	// its CairnContact and CairnContactIDs search attributes current from it.
	ContactIDs []string `json:"contact_ids,omitempty"`
}

// State is the answer to QueryState and the workflow's result: where the contact is, how it
// got there and what it waits for.
type State struct {
	JourneyID   string     `json:"journey_id"`
	Version     int        `json:"version"`
	ContactID   int64      `json:"contact_id"`
	Status      string     `json:"status"` // running, waiting, completed, exited, failed
	CurrentStep string     `json:"current_step"`
	WaitingFor  string     `json:"waiting_for,omitempty"`
	WaitUntil   *time.Time `json:"wait_until,omitempty"`
	Path        []Visit    `json:"path"`
	GoalsMet    []string   `json:"goals_met"`
	Events      []Event    `json:"events"`
	Error       string     `json:"error,omitempty"`
	// Next is what comes next (the state query answers it; a run that is over has none).
	Next *Next `json:"next,omitempty"`
}

// Visit is one step taken.
type Visit struct {
	Step      string     `json:"step"`
	Kind      string     `json:"kind"`
	Summary   string     `json:"summary"`
	EnteredAt time.Time  `json:"entered_at"`
	LeftAt    *time.Time `json:"left_at,omitempty"`
	Outcome   string     `json:"outcome,omitempty"`
}

// Statuses of a run.
const (
	StatusRunning   = "running"
	StatusWaiting   = "waiting"
	StatusCompleted = "completed"
	StatusExited    = "exited"
	StatusFailed    = "failed"
)

// CartInput starts a CartWatch for a contact.
type CartInput struct {
	ContactID int64 `json:"contact_id"`
	// Contact is the contact's own id, for the CairnContact search attribute.
	Contact string        `json:"contact,omitempty"`
	Idle    time.Duration `json:"idle"`
}

// CartState is CartWatch's result: what happened to the cart.
type CartState struct {
	Outcome  string         `json:"outcome"` // abandoned or converted
	LastCart map[string]any `json:"last_cart,omitempty"`
	Updates  int            `json:"updates"`
}

// ContactAttributes are the search-attribute values naming a contact: CairnContact is the id
// the sending systems know it by now (a user id, or "anon:<id>"), CairnContactIDs that id and
// every earlier one (aliases), sorted.
//
// Search attributes are stored and shown unencrypted, so an id that is an email address or a
// phone number (PersonalID) is left out: such a contact's runs are found through the CRM.
func ContactAttributes(current string, aliases []string) []temporal.SearchAttributeUpdate {
	var ids []string
	for _, id := range append([]string{current}, aliases...) {
		if !PersonalID(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	contact := AttrContact.ValueSet(current)
	if PersonalID(current) {
		contact = AttrContact.ValueUnset()
	}
	if len(ids) == 0 {
		return []temporal.SearchAttributeUpdate{contact, AttrContactIDs.ValueUnset()}
	}
	return []temporal.SearchAttributeUpdate{contact, AttrContactIDs.ValueSet(ids)}
}

// PersonalID reports whether a contact id is personal data in itself: an email address (any
// id with an @) or a phone number: at least 7 digits written with a leading + or with
// separators (spaces, - . ( )), nothing else. Plain digits are a database's ids, not phones.
func PersonalID(id string) bool {
	id = strings.TrimPrefix(id, "anon:")
	if strings.Contains(id, "@") {
		return true
	}
	digits, marks := 0, 0
	for _, r := range id {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune(" +-.()", r):
			marks++
		default:
			return false
		}
	}
	return digits >= 7 && marks > 0
}

// ContactOfWorkflowID is the contact a workflow belongs to, read from its ID (a journey run's
// journey:<journeyID>:<contactID> or a cart watch's cart:<contactID>); ok is false for
// workflows of no contact (the date scheduler).
func ContactOfWorkflowID(id string) (contactID int64, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(id, "journey:"):
		id = trimRunKey(id)
		i := strings.LastIndexByte(id, ':')
		if i < len("journey:") {
			return 0, false
		}
		rest = id[i+1:]
	case strings.HasPrefix(id, "cart:"):
		rest = id[len("cart:"):]
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != rest {
		return 0, false
	}
	return n, true
}
