package journey

// The event vocabulary: the names of the events Cairn records itself, and the Segment
// e-commerce names it gives meaning to. Triggers, conditions, scoring rules and the dispatcher
// all use these constants; docs/events.md lists them with who records each.
const (
	// Contact changes made by a journey step, the API or an ingested call.
	EventTagAdded         = "tag_added"
	EventTagRemoved       = "tag_removed"
	EventFieldChanged     = "field_changed"
	EventScoreChanged     = "score_changed"
	EventListSubscribed   = "list_subscribed"
	EventListUnsubscribed = "list_unsubscribed"
	EventDealCreated      = "deal_created"
	EventDealStageChanged = "deal_stage_changed"
	EventTaskCreated      = "task_created"
	EventNoteAdded        = "note_added"
	EventFormSubmitted    = "form_submitted"

	// Messages.
	EventEmailSent       = "email_sent"
	EventEmailOpened     = "email_opened"
	EventEmailClicked    = "email_clicked"
	EventSMSSent         = "sms_sent"
	EventAudienceAdded   = "audience_added"
	EventAudienceRemoved = "audience_removed"

	// Journeys.
	EventStartRequested   = "journey_start_requested"
	EventJourneyCompleted = "journey_completed"
	EventJourneyExited    = "journey_exited"
	// EventJourneyFailed and EventJourneyCancelled end runs that did not finish their steps.
	EventJourneyFailed    = "journey_failed"
	EventJourneyCancelled = "journey_cancelled"
	EventGoalMet          = "goal_met"

	// Time and segments.
	EventDateReached    = "date_reached"
	EventSegmentEntered = "segment_entered"
	EventSegmentExited  = "segment_exited"

	// EventCampaignEntered is a segment member entering a campaign's journey at one of its
	// firings (properties campaign, firing, journey): the dispatcher starts that journey.
	EventCampaignEntered = "campaign_entered"

	// Custom object records (properties object, record, changed and the record's fields),
	// written through the API or by a type's source events.
	EventObjectCreated = "object_created"
	EventObjectChanged = "object_changed"
	EventObjectDeleted = "object_deleted"

	// Commerce: Cairn's own abandonment, and the Segment e-commerce spec's order.
	EventCartAbandoned  = "cart_abandoned"
	EventOrderCompleted = "Order Completed"
	EventProductViewed  = "Product Viewed"

	// EventUnsubscribed is a recipient's unsubscribe through a signed link.
	EventUnsubscribed = "unsubscribed"

	// Segment calls that are not track: their type is the event's name.
	EventIdentify = "identify"
	EventAlias    = "alias"
)

// reserved are the names of facts only Cairn establishes: a tag it added, an email it saw
// opened through a signed link, a journey it started. Ingestion refuses them (a write key
// must not be able to fake a tag, an open or a journey start), and the CRM records them only
// from Cairn's own writers.
var reserved = map[string]bool{
	EventTagAdded: true, EventTagRemoved: true, EventFieldChanged: true, EventScoreChanged: true,
	EventListSubscribed: true, EventListUnsubscribed: true, EventDealCreated: true, EventDealStageChanged: true,
	EventTaskCreated: true, EventNoteAdded: true, EventFormSubmitted: true,
	EventEmailSent: true, EventEmailOpened: true, EventEmailClicked: true, EventSMSSent: true,
	EventAudienceAdded: true, EventAudienceRemoved: true, EventUnsubscribed: true,
	EventStartRequested: true, EventJourneyCompleted: true, EventJourneyExited: true, EventGoalMet: true,
	EventJourneyFailed: true, EventJourneyCancelled: true,
	EventDateReached: true, EventSegmentEntered: true, EventSegmentExited: true,
	EventCampaignEntered: true, EventObjectCreated: true, EventObjectChanged: true, EventObjectDeleted: true,
}

// segmentCalls are the names Segment calls other than track are recorded under: a track
// may not take them either, or it would pass for that call.
var segmentCalls = map[string]bool{EventIdentify: true, EventAlias: true, "page": true, "screen": true, "group": true}

// Reserved says whether an event name belongs to Cairn's own vocabulary.
func Reserved(name string) bool { return reserved[name] }

// ReservedForTrack says whether a track call may not use the name: Cairn's own facts and the
// other Segment calls' names.
func ReservedForTrack(name string) bool { return reserved[name] || segmentCalls[name] }

// CartEvents open or refresh a contact's cart (and restart its cart watch).
var CartEvents = []string{"Product Added", "Product Removed", "Cart Viewed", "Cart Updated", "Checkout Started", "cart_updated"}
