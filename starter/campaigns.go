package starter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// Scheduler is what the campaign API asks of Temporal: keep a campaign's Temporal Schedule as
// its row says (spec, paused), start a firing now, and tell running firings that their
// campaign was resumed. TemporalScheduler is the one Cairn runs; tests give a fake.
type Scheduler interface {
	Sync(ctx context.Context, c crm.Campaign) error
	Fire(ctx context.Context, campaignID string) error
	Resume(ctx context.Context, firings []string) error
}

// TemporalScheduler keeps campaigns as Temporal Schedules.
type TemporalScheduler struct {
	Client client.Client
}

// scheduleSpec is when the campaign's schedule takes its action.
func scheduleSpec(s journey.CampaignSchedule) client.ScheduleSpec {
	switch {
	case s.At != nil:
		at := s.At.UTC()
		one := func(v int) []client.ScheduleRange { return []client.ScheduleRange{{Start: v}} }
		return client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{{
			Year: one(at.Year()), Month: one(int(at.Month())), DayOfMonth: one(at.Day()),
			Hour: one(at.Hour()), Minute: one(at.Minute()), Second: one(at.Second()), Comment: "once",
		}}}
	case s.Every != nil:
		iv := client.ScheduleIntervalSpec{Every: s.Every.D}
		if s.Offset != nil {
			iv.Offset = s.Offset.D
		}
		return client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{iv}}
	}
	return client.ScheduleSpec{CronExpressions: []string{s.Cron}, TimeZoneName: s.Timezone}
}

// Sync creates the campaign's schedule, or updates it to the campaign's spec and pause.
func (t *TemporalScheduler) Sync(ctx context.Context, c crm.Campaign) error {
	spec := scheduleSpec(c.Schedule)
	action := &client.ScheduleWorkflowAction{
		ID: contract.CampaignWorkflowID(c.ID), Workflow: contract.CampaignFiringType, TaskQueue: contract.TaskQueue,
		Args:          []any{contract.CampaignInput{Campaign: c.ID}},
		StaticSummary: fmt.Sprintf("campaign %s: segment %s enters %s", c.ID, c.Segment, c.EntryJourney()),
	}
	policy := &client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, CatchupWindow: time.Hour}
	id := contract.CampaignScheduleID(c.ID)
	h := t.Client.ScheduleClient().GetHandle(ctx, id)
	_, err := h.Describe(ctx)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		_, err = t.Client.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Action: action,
			Overlap: policy.Overlap, CatchupWindow: policy.CatchupWindow, Paused: c.Paused, Note: "campaign " + c.ID})
		if err != nil {
			return fmt.Errorf("create schedule %s: %w", id, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("describe schedule %s: %w", id, err)
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Spec, s.Action, s.Policy = &spec, action, policy
		if s.State == nil {
			s.State = &client.ScheduleState{}
		}
		s.State.Paused, s.State.Note = c.Paused, "campaign "+c.ID
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", id, err)
	}
	return nil
}

// Fire starts a firing now, through the schedule (so its overlap policy applies).
func (t *TemporalScheduler) Fire(ctx context.Context, campaignID string) error {
	id := contract.CampaignScheduleID(campaignID)
	if err := t.Client.ScheduleClient().GetHandle(ctx, id).Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		return fmt.Errorf("trigger schedule %s: %w", id, err)
	}
	return nil
}

// Resume signals each firing that its campaign goes on (a firing already over is skipped).
func (t *TemporalScheduler) Resume(ctx context.Context, firings []string) error {
	for _, f := range firings {
		err := t.Client.SignalWorkflow(ctx, f, "", contract.SignalResume, nil)
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("signal %s: %w", f, err)
		}
	}
	return nil
}

// errNoScheduler answers campaign calls on a starter built without Temporal (tests).
var errNoScheduler = &apiError{Status: http.StatusServiceUnavailable, Code: "no_scheduler", Message: "this starter has no Temporal connection: campaigns cannot be scheduled"}

// schedulerError maps a failed call to Temporal to a reply that says so.
func schedulerError(err error) error {
	var ae *apiError
	var ve *journey.ValidationError
	if err == nil || errors.As(err, &ae) || errors.As(err, &ve) || errors.Is(err, crm.ErrNotFound) {
		return err
	}
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_campaign", Path: "schedule", Message: "Temporal refused the schedule: " + invalid.Message}
	}
	if isTransient(err) {
		return &apiError{Status: http.StatusServiceUnavailable, Code: "temporal_unavailable", Message: "Temporal did not answer; nothing was changed: " + err.Error()}
	}
	return err
}

// campaignProblems answers a campaign with mistakes: 422 invalid_campaign with their paths.
func campaignProblems(err error) error {
	var ve *journey.ValidationError
	if errors.As(err, &ve) {
		msgs := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			msgs[i] = p.String()
		}
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_campaign", Message: "invalid campaign: " + strings.Join(msgs, "; "), Problems: ve.Problems}
	}
	return err
}

// putCampaign saves a campaign (YAML or JSON) and its Temporal Schedule, together or not at all.
func (a *API) putCampaign(w http.ResponseWriter, r *http.Request) error {
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if p := journey.CampaignIDProblem(id); p != "" {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_campaign", Path: "url path id", Message: p}
	}
	c, err := journey.DecodeCampaign(doc, a.Now())
	var ve *journey.ValidationError
	switch {
	case err != nil && c != nil && errors.As(err, &ve):
		// Every problem at once: what the document names is looked up too.
		refs, err := crm.CampaignProblems(r.Context(), a.DB, c)
		if err != nil {
			return err
		}
		return campaignProblems(&journey.ValidationError{Problems: append(ve.Problems, refs...)})
	case err != nil:
		return campaignProblems(err)
	}
	if c.ID != "" && c.ID != id {
		return badRequest("id", "the document's id %q does not match the URL's %q", c.ID, id)
	}
	c.ID = id
	if a.Scheduler == nil {
		return errNoScheduler
	}
	created, err := crm.PutCampaign(r.Context(), a.DB, c, string(doc), func(stored crm.Campaign) error {
		return a.Scheduler.Sync(r.Context(), stored)
	})
	if err != nil {
		return schedulerError(campaignProblems(err))
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return a.writeCampaign(w, r, status, id)
}

// writeCampaign answers with the campaign and its latest firings' progress.
func (a *API) writeCampaign(w http.ResponseWriter, r *http.Request, status int, id string) error {
	c, err := crm.CampaignByID(r.Context(), a.DB, id)
	if err != nil {
		return err
	}
	firings, err := crm.CampaignFirings(r.Context(), a.DB, id, 20)
	if err != nil {
		return err
	}
	if firings == nil {
		firings = []crm.Firing{}
	}
	writeJSON(w, status, map[string]any{"id": c.ID, "name": c.Name, "segment": c.Segment, "journey": c.EntryJourney(), "message": c.Message,
		"schedule": c.Campaign.Schedule, "when": c.Campaign.Schedule.String(), "rate": c.Rate, "batch": c.Batch, "paused": c.Paused,
		"created_at": c.CreatedAt, "updated_at": c.UpdatedAt, "firings": firings})
	return nil
}

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request) error {
	return a.writeCampaign(w, r, http.StatusOK, r.PathValue("id"))
}

// pauseCampaign stops (or restarts) a campaign's entries and firings: the row and the
// schedule together; a resumed campaign's running firings are told at once.
func (a *API) pauseCampaign(paused bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.Scheduler == nil {
			return errNoScheduler
		}
		running, err := crm.SetCampaignPaused(r.Context(), a.DB, r.PathValue("id"), paused, func(c crm.Campaign) error {
			return a.Scheduler.Sync(r.Context(), c)
		})
		if err != nil {
			return schedulerError(err)
		}
		if !paused {
			// Best effort: a firing not told looks again within a minute.
			if err := a.Scheduler.Resume(r.Context(), running); err != nil {
				a.Logger.Warn("could not tell running firings that their campaign resumed; they look within a minute", "error", err)
			}
		}
		return a.writeCampaign(w, r, http.StatusOK, r.PathValue("id"))
	}
}

// fireCampaign starts a firing now: 202.
func (a *API) fireCampaign(w http.ResponseWriter, r *http.Request) error {
	c, err := crm.CampaignByID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return err
	}
	if c.Paused {
		return &apiError{Status: http.StatusConflict, Code: "paused", Message: fmt.Sprintf("campaign %q is paused: resume it first", c.ID)}
	}
	if a.Scheduler == nil {
		return errNoScheduler
	}
	if err := a.Scheduler.Fire(r.Context(), c.ID); err != nil {
		return schedulerError(err)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"campaign": c.ID, "fired": true})
	return nil
}
