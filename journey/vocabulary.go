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
	EventGoalMet          = "goal_met"

	// Time and segments.
	EventDateReached    = "date_reached"
	EventSegmentEntered = "segment_entered"
	EventSegmentExited  = "segment_exited"

	// Commerce: Cairn's own abandonment, and the Segment e-commerce spec's order.
	EventCartAbandoned  = "cart_abandoned"
	EventOrderCompleted = "Order Completed"
	EventProductViewed  = "Product Viewed"

	// Segment calls that are not track: their type is the event's name.
	EventIdentify = "identify"
	EventAlias    = "alias"
)

// CartEvents open or refresh a contact's cart (and restart its cart watch).
var CartEvents = []string{"Product Added", "Product Removed", "Cart Viewed", "Cart Updated", "Checkout Started", "cart_updated"}
