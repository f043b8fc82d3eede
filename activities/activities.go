// Package activities holds every effect and check a journey step has, as methods on one
// Activities struct. Each effect is idempotent: it is recorded in the action ledger under the
// key the workflow derives, so a retry changes nothing and returns the first result.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/clock"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/provider"
	"github.com/cairnhq/cairn/telemetry"
)

// Activities holds the dependencies of every activity.
type Activities struct {
	// DB is the CRM's PostgreSQL (a pool; a simulation's scratch CRM in a transaction).
	DB crm.DB
	// Clock tells the time CRM writes and condition checks use (nil: the system clock).
	Clock clock.Clock
	// Mail sends email; nil means no SMTP server is configured, and send_email steps fail
	// saying so.
	Mail *Mail
	// Providers for the other deliveries; nil ones make their steps fail saying what to set.
	SMS      *provider.SMS
	Notifier *provider.Notify
	Audience *provider.Audience
	// Policy is the worker's default send policy (CAIRN_EMAIL_CAPS, CAIRN_EMAIL_QUIET_HOURS,
	// …), which a journey's policy overrides per channel; nil: none.
	Policy *journey.Policy
}

// SendPolicy is what a run tells a delivery activity about the send policy: the journey's
// policy for the channel (over the worker's defaults), the step's rules and the journey's
// time zone (for contacts without one). Runs from before the send policy send none, and
// their sends are neither held back nor counted.
type SendPolicy struct {
	Journey  *journey.ChannelPolicy `json:"journey,omitempty"`
	Rules    journey.SendRules      `json:"rules"`
	Timezone string                 `json:"timezone,omitempty"`
}

// check is the CRM's check of a send on channel under p, now; nil when p is.
func (a *Activities) check(p *SendPolicy, channel, journeyID, step string) *crm.SendCheck {
	if p == nil {
		return nil
	}
	return &crm.SendCheck{Channel: channel, Policy: journey.Effective(a.Policy.For(channel), p.Journey),
		Transactional: p.Rules.Transactional, IfCapped: p.Rules.IfCapped, Timezone: p.Timezone,
		Journey: journeyID, Step: step, At: a.now()}
}

// Mail is what email sends need besides the store.
type Mail struct {
	Sender  email.Sender
	Tracker email.Tracker
	// Domain ends Message-IDs (<hash@Domain>).
	Domain string
}

// Error types that are not worth a retry; Temporal fails the activity at once.
const (
	ErrTypeNotFound = "NotFound"
	ErrTypeNoEmail  = "NoEmailAddress"
)

// AddTagInput adds a tag. Key is the workflow's idempotency key for the step visit.
type AddTagInput struct {
	Key       string `json:"key"`
	ContactID int64  `json:"contact_id"`
	Tag       string `json:"tag"`
}

// ActionOutput reports what an action did; Replayed means an earlier attempt had done it.
// Deferred, on a send, means the send policy held it back and nothing was sent: the run
// waits until Deferred.Until and tries again (or, Skipped, goes on without it).
type ActionOutput struct {
	Replayed bool           `json:"replayed"`
	Detail   map[string]any `json:"detail,omitempty"`
	Deferred *crm.Deferral  `json:"deferred,omitempty"`
}

// AddTag tags the contact (and records tag_added so tag-triggered journeys start).
func (a *Activities) AddTag(ctx context.Context, in AddTagInput) (ActionOutput, error) {
	res, err := crm.AddTag(ctx, a.DB, a.action(in.Key, in.ContactID), in.Tag)
	return output(res, err)
}

// SendEmailInput sends a template to the contact.
type SendEmailInput struct {
	Key       string `json:"key"`
	ContactID int64  `json:"contact_id"`
	Template  string `json:"template"`
	// Journey and Step are available to the template as {{.Journey}} and {{.Step}}.
	Journey string `json:"journey,omitempty"`
	Step    string `json:"step,omitempty"`
	// Policy, when set, holds the send to the frequency caps and quiet hours.
	Policy *SendPolicy `json:"policy,omitempty"`
	// Trigger is the event that started the run and Event the latest one it heard:
	// {{.Trigger}} and {{.Event}} in templates.
	Trigger *contract.Event `json:"trigger,omitempty"`
	Event   *contract.Event `json:"event,omitempty"`
	// Timezone is the journey's, for dates of contacts without a time zone of their own.
	Timezone string `json:"timezone,omitempty"`
}

// templateEvent is how a template sees an event (zero for none).
func templateEvent(ev *contract.Event) email.Event {
	if ev == nil {
		return email.Event{}
	}
	return email.Event{Name: ev.Name, Properties: ev.Properties, At: ev.OccurredAt}
}

// SendEmail renders the template for the contact, adds tracking and unsubscribe links, and
// sends it over SMTP, once per key: the ledger row is written as 'sending' before the SMTP
// call and 'done' after. A retry after a crash in between sends the same message again with
// the same Message-ID; one after 'done' sends nothing and returns the first result.
func (a *Activities) SendEmail(ctx context.Context, in SendEmailInput) (out ActionOutput, err error) {
	defer func() { countSend("email", out, err) }()
	if a.Mail == nil || a.Mail.Sender == nil {
		return ActionOutput{}, notConfigured("email", "CAIRN_SMTP_HOST and CAIRN_SMTP_FROM")
	}
	var msg email.Message
	check := a.check(in.Policy, journey.ChannelEmail, in.Journey, in.Step)
	es, err := crm.ClaimEmail(ctx, a.DB, in.Key, in.ContactID, in.Template, check, func(es *crm.EmailSend) error {
		es.Data.Journey, es.Data.Step = in.Journey, in.Step
		var err error
		es.Data.Context, err = crm.TemplateContext(ctx, es.Conn, crm.TemplateInput{ContactID: in.ContactID,
			Trigger: templateEvent(in.Trigger), Event: templateEvent(in.Event), Timezone: in.Timezone, Now: a.now()})
		if err != nil {
			return err
		}
		r, err := es.Template.Render(es.Data)
		if err != nil {
			return err
		}
		msg = email.Message{ID: messageID(in.Key, a.Mail.Domain), To: es.To, Subject: r.Subject, HTML: r.HTML, Text: r.Text}
		return a.Mail.Tracker.Apply(&msg, es.MessageID, in.ContactID)
	})
	if err != nil {
		return output(crm.ActionResult{}, err)
	}
	if es.Done {
		return ActionOutput{Replayed: true, Detail: es.Result}, nil
	}
	if es.Deferred != nil {
		return ActionOutput{Deferred: es.Deferred}, nil
	}
	if err := a.smtpSend(ctx, msg); err != nil {
		var perm *email.PermanentError
		if errors.As(err, &perm) {
			return ActionOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRejected, err)
		}
		return ActionOutput{}, fmt.Errorf("send email: %w", err)
	}
	result, err := crm.CompleteEmail(ctx, a.DB, in.Key, es, msg.Subject, msg.ID, a.now())
	if err != nil {
		return ActionOutput{}, fmt.Errorf("record sent email: %w", err)
	}
	return ActionOutput{Detail: result}, nil
}

// smtpSend hands the message to the SMTP server, timed and under a span of its own (which
// names neither the recipient nor the subject).
func (a *Activities) smtpSend(ctx context.Context, msg email.Message) error {
	start := time.Now()
	ctx, span := telemetry.Tracer().Start(ctx, "smtp send", trace.WithSpanKind(trace.SpanKindClient))
	err := a.Mail.Sender.Send(ctx, msg)
	outcome := providerOutcome(err)
	telemetry.Since(telemetry.ProviderCallDuration.WithLabelValues("smtp", outcome), start)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("cairn.outcome", outcome))
		if err != nil {
			span.SetStatus(codes.Error, outcome)
		}
		span.End()
	}
	return err
}

// providerOutcome is a provider call's outcome label: ok, rejected (for good) or error.
func providerOutcome(err error) string {
	var perm *email.PermanentError
	var rejected *provider.Rejected
	var p *permanentError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &perm), errors.As(err, &rejected), errors.As(err, &p):
		return "rejected"
	}
	return "error"
}

// countSend counts a delivery activity's outcome on cairn_sends_total.
func countSend(channel string, out ActionOutput, err error) {
	outcome := "sent"
	var appErr *temporal.ApplicationError
	switch {
	case err != nil && errors.As(err, &appErr) && appErr.Type() == ErrTypeNotReady:
		outcome = "not_ready"
	case err != nil && errors.As(err, &appErr) && appErr.NonRetryable():
		outcome = "rejected"
	case err != nil:
		outcome = "failed"
	case out.Replayed:
		outcome = "replayed"
	case out.Deferred != nil:
		outcome = "deferred"
		if out.Deferred.Skipped {
			outcome = "skipped"
		}
		telemetry.SendPolicyHeld.WithLabelValues(channel, out.Deferred.Rule, outcome).Inc()
	}
	telemetry.Sends.WithLabelValues(channel, outcome).Inc()
}

// ErrTypeRejected marks a message or call the provider refused for good.
const ErrTypeRejected = "Rejected"

// messageID derives the Message-ID from the idempotency key.
func messageID(key, domain string) string {
	if domain == "" {
		domain = "cairn.local"
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16]) + "@" + domain
}

func output(res crm.ActionResult, err error) (ActionOutput, error) {
	switch {
	case errors.Is(err, crm.ErrNotFound):
		return ActionOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotFound, err)
	case errors.Is(err, crm.ErrNoDeal):
		return ActionOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotFound, err)
	case errors.Is(err, crm.ErrNoEmail):
		return ActionOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNoEmail, err)
	case errors.Is(err, crm.ErrNoTemplate):
		// Delivery is not ready: the step waits, retried with backoff, until the template is put.
		return ActionOutput{}, notReady(err.Error() + " (PUT /v1/templates/{id} to add it)")
	case errors.Is(err, crm.ErrUnsubscribed), errors.Is(err, email.ErrTemplate):
		return ActionOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRejected, err)
	case err != nil:
		return ActionOutput{}, fmt.Errorf("activity: %w", err)
	}
	return ActionOutput{Replayed: res.Replayed, Detail: res.Detail}, nil
}

// ErrTypeCondition marks a condition that cannot be evaluated as written.
const ErrTypeCondition = "InvalidCondition"

// CheckInput asks whether a contact matches a condition now.
type CheckInput struct {
	ContactID int64             `json:"contact_id"`
	Condition journey.Condition `json:"condition"`
	// EnteredAt is when the contact entered the journey, for since_entry windows.
	EnteredAt time.Time `json:"entered_at"`
	// Trigger holds the properties of the event that started the run, for keyed values.
	Trigger map[string]any `json:"trigger,omitempty"`
}

// CheckCondition answers if/else, wait-until and exit questions against the CRM.
func (a *Activities) CheckCondition(ctx context.Context, in CheckInput) (bool, error) {
	ok, err := crm.Matches(ctx, a.DB, in.ContactID, in.Condition, crm.Env{Now: a.now(), EnteredAt: in.EnteredAt, Trigger: in.Trigger})
	switch {
	case errors.Is(err, crm.ErrCondition):
		return false, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeCondition, err)
	case errors.Is(err, crm.ErrNotFound):
		return false, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotFound, err)
	case err != nil:
		return false, fmt.Errorf("check condition: %w", err)
	}
	return ok, nil
}

// FirstMatchInput asks which of several conditions holds first.
type FirstMatchInput struct {
	ContactID  int64               `json:"contact_id"`
	Conditions []journey.Condition `json:"conditions"`
	EnteredAt  time.Time           `json:"entered_at"`
	Trigger    map[string]any      `json:"trigger,omitempty"`
}

// FirstMatch returns the index of the first condition the contact matches, or -1: a
// multi-branch step costs one activity, not one per branch.
func (a *Activities) FirstMatch(ctx context.Context, in FirstMatchInput) (int, error) {
	for i, c := range in.Conditions {
		ok, err := a.CheckCondition(ctx, CheckInput{ContactID: in.ContactID, Condition: c, EnteredAt: in.EnteredAt, Trigger: in.Trigger})
		if err != nil {
			return -1, err
		}
		if ok {
			return i, nil
		}
	}
	return -1, nil
}

// ScheduleInput asks when a calendar wait ends for a contact.
type ScheduleInput struct {
	ContactID       int64             `json:"contact_id"`
	Date            *journey.DateWait `json:"date,omitempty"`
	Window          *journey.Window   `json:"window,omitempty"`
	DefaultTimezone string            `json:"default_timezone,omitempty"`
	// After is the workflow's now: the wait is computed from it, not from the wall clock.
	After time.Time `json:"after"`
}

// ScheduleOutput is when the wait ends (At zero: no wait) and how that was decided.
type ScheduleOutput struct {
	At   time.Time `json:"at"`
	Zone string    `json:"zone"`
	Note string    `json:"note"`
}

// ScheduleWait reads the contact's time zone (contact → journey → UTC; the contact's is its
// timezone trait, or else the one its device reported) and, for a field
// wait, the field, and computes when the wait ends. It runs as a local activity: the result
// is recorded in history, so the time zone data of whichever worker replays does not matter.
func (a *Activities) ScheduleWait(ctx context.Context, in ScheduleInput) (ScheduleOutput, error) {
	c, err := crm.ContactByID(ctx, a.DB, in.ContactID)
	if err != nil {
		return ScheduleOutput{}, output2(err)
	}
	loc, zone := journey.ContactZone(c.Timezone, in.DefaultTimezone)
	out := ScheduleOutput{Zone: zone}
	switch {
	case in.Window != nil:
		out.At = in.Window.Next(in.After, loc)
		out.Note = "window opens " + out.At.In(loc).Format("Mon 2006-01-02 15:04 MST")
	case in.Date != nil:
		field := ""
		if in.Date.Field != "" {
			v, ok := c.Traits[in.Date.Field]
			if !ok || v == nil || fmt.Sprint(v) == "" {
				out.Note = fmt.Sprintf("field %s is not set: not waiting", in.Date.Field)
				return out, nil
			}
			field = fmt.Sprint(v)
		}
		at, err := in.Date.Target(field, loc)
		if err != nil {
			out.Note = fmt.Sprintf("field %s: %v: not waiting", in.Date.Field, err)
			return out, nil
		}
		out.At = at
		out.Note = "until " + at.In(loc).Format("Mon 2006-01-02 15:04 MST")
	}
	return out, nil
}

// output2 maps store errors for activities that return no ActionOutput.
func output2(err error) error {
	_, err = output(crm.ActionResult{}, err)
	return err
}

// CartAbandonedInput records that a contact's cart went idle.
type CartAbandonedInput struct {
	Key       string         `json:"key"`
	ContactID int64          `json:"contact_id"`
	Cart      map[string]any `json:"cart,omitempty"`
	Idle      time.Duration  `json:"idle"`
}

// RecordCartAbandoned records cart_abandoned (once per key) with the last cart seen.
func (a *Activities) RecordCartAbandoned(ctx context.Context, in CartAbandonedInput) (ActionOutput, error) {
	props := map[string]any{"detected_by": "cairn", "idle": in.Idle.String()}
	for k, v := range in.Cart {
		props[k] = v
	}
	return output(crm.RecordInternal(ctx, a.DB, a.action(in.Key, in.ContactID), "cart_abandoned", props))
}

// ScanDatesOutput counts the date_reached events recorded, per rule.
type ScanDatesOutput struct {
	Recorded map[string]int64 `json:"recorded"`
}

// ScanDates records date_reached for today's dates and anniversaries of every date rule.
// Safe to repeat: each contact, rule and day is recorded once.
func (a *Activities) ScanDates(ctx context.Context, now time.Time) (ScanDatesOutput, error) {
	rules, err := crm.DateRules(ctx, a.DB)
	if err != nil {
		return ScanDatesOutput{}, err
	}
	out := ScanDatesOutput{Recorded: map[string]int64{}}
	for _, r := range rules {
		n, err := crm.RecordDatesReached(ctx, a.DB, r, now)
		if err != nil {
			return out, err
		}
		out.Recorded[r.Key()] = n
	}
	return out, nil
}

// RecheckSegments re-evaluates every segment a journey triggers on over all contacts, for
// conditions that change with time alone; entries and exits become events.
func (a *Activities) RecheckSegments(ctx context.Context, now time.Time) (map[string]int64, error) {
	start := time.Now()
	in, out, err := crm.RecheckAllMembers(ctx, a.DB, now)
	telemetry.Since(telemetry.SegmentQueryDuration.WithLabelValues("recheck_all"), start)
	return map[string]int64{"entered": in, "exited": out}, err
}

// ExpireScores takes back scoring-rule points past their expiry.
func (a *Activities) ExpireScores(ctx context.Context, now time.Time) (int, error) {
	return crm.ExpireScores(ctx, a.DB, now)
}

// RunRecord reports a goal met or a run's end to the CRM.
type RunRecord struct {
	Journey   string    `json:"journey"`
	ContactID int64     `json:"contact_id"`
	RunID     string    `json:"run_id"`
	Goal      string    `json:"goal,omitempty"`
	Status    string    `json:"status,omitempty"` // completed or exited
	At        time.Time `json:"at"`
	// TriggerEvent is the id of the event that started the run (0: unknown).
	TriggerEvent int64 `json:"trigger_event,omitempty"`
}

// RecordGoal records a goal met (goal_completions, goal_met); idempotent.
func (a *Activities) RecordGoal(ctx context.Context, in RunRecord) error {
	return crm.RecordGoal(ctx, a.DB, in.Journey, in.ContactID, in.Goal, in.RunID, in.At)
}

// RecordRunEnd closes the run's enrollment and records journey_completed / journey_exited;
// idempotent.
func (a *Activities) RecordRunEnd(ctx context.Context, in RunRecord) error {
	return crm.RecordRunEnd(ctx, a.DB, in.Journey, in.ContactID, in.RunID, in.Status, in.At, in.TriggerEvent)
}

func (a *Activities) now() time.Time { return clock.OrSystem(a.Clock).Now() }

// action identifies a ledgered effect for the CRM, timed by the activities' clock.
func (a *Activities) action(key string, contactID int64) crm.Action {
	return crm.Action{Key: key, ContactID: contactID, At: a.now()}
}

// MigrationRecord tells the CRM a run (by the first run id of its chain) continues on another
// version of its journey.
type MigrationRecord struct {
	Journey   string `json:"journey"`
	ContactID int64  `json:"contact_id"`
	RunID     string `json:"run_id"`
	Version   int    `json:"version"`
}

// RecordMigration moves the run's enrollment to the new version, so the events its new
// version listens for reach it; idempotent.
func (a *Activities) RecordMigration(ctx context.Context, in MigrationRecord) error {
	return crm.MoveEnrollment(ctx, a.DB, in.Journey, in.ContactID, in.RunID, in.Version)
}

// SplitInput assigns a contact reaching a split_test step a variant.
type SplitInput struct {
	Key       string            `json:"key"`
	ContactID int64             `json:"contact_id"`
	Journey   string            `json:"journey"`
	Step      string            `json:"step"`
	RunKey    string            `json:"run_key"`
	RunID     string            `json:"run_id"`
	Test      journey.SplitTest `json:"test"`
}

// AssignSplit picks the variant of a split test the contact takes, once per key: the next in
// turn while the test runs, the winner once it is decided (crm.AssignSplit).
func (a *Activities) AssignSplit(ctx context.Context, in SplitInput) (crm.SplitAssignment, error) {
	out, err := crm.AssignSplit(ctx, a.DB, crm.SplitVisit{Key: in.Key, Journey: in.Journey, Step: in.Step, ContactID: in.ContactID,
		RunKey: in.RunKey, RunID: in.RunID, At: a.now()}, in.Test)
	if err != nil {
		return crm.SplitAssignment{}, fmt.Errorf("assign split test variant: %w", err)
	}
	return *out, nil
}
