package starter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// Dispatcher turns stored events into Temporal calls: for each event, in id order, a
// SignalWithStart of every journey it triggers. Several dispatchers (one per starter replica)
// share the work through FOR UPDATE SKIP LOCKED.
type Dispatcher struct {
	DB       *pgxpool.Pool
	Temporal client.Client
	Logger   *slog.Logger
	// Batch is how many events one transaction claims; PollEvery is the fallback when no
	// notification arrives.
	Batch     int
	PollEvery time.Duration
	// Concurrency bounds how many contacts' events are dispatched at once (default 8).
	Concurrency int
	// CartIdle is how long a cart may sit untouched before Cairn records cart_abandoned;
	// zero turns the detection off.
	CartIdle time.Duration
}

// Run dispatches until ctx is cancelled. It wakes on LISTEN/NOTIFY and polls as a fallback;
// while Temporal is unreachable it backs off and leaves events undispatched, so nothing
// accepted is lost.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Batch == 0 {
		d.Batch = 100
	}
	if d.PollEvery == 0 {
		d.PollEvery = time.Second
	}
	wake := make(chan struct{}, 1)
	go d.listen(ctx, wake)
	backoff := time.Duration(0)
	for {
		n, err := d.DispatchBatch(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
			d.Logger.Warn("dispatch failed; events stay queued", "error", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		if n == d.Batch {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(d.PollEvery):
		}
	}
}

// DispatchBatch dispatches up to Batch events and reports how many it finished. Events of
// one contact are dispatched in order, in a transaction of their own; different contacts'
// events go in parallel (up to Concurrency). When a Temporal call fails, that contact's
// remaining events stay queued, in order, and the error is returned after the rest are done.
func (d *Dispatcher) DispatchBatch(ctx context.Context) (int, error) {
	done := 0
	var failure error
	err := crm.WithTx(ctx, d.DB, func(tx pgx.Tx) error {
		events, err := crm.ClaimEvents(ctx, tx, d.Batch)
		if err != nil {
			return err
		}
		var order []int64
		groups := map[int64][]crm.Event{}
		for _, ev := range events {
			if _, ok := groups[ev.ContactID]; !ok {
				order = append(order, ev.ContactID)
			}
			groups[ev.ContactID] = append(groups[ev.ContactID], ev)
		}
		cache := &batchCache{db: d.DB, triggered: map[string][]crm.JourneyVersion{}}
		results := make([]struct {
			n   int
			err error
		}, len(order))
		limit := d.Concurrency
		if limit <= 0 {
			limit = 8
		}
		sem := make(chan struct{}, limit)
		var wg sync.WaitGroup
		for gi, contact := range order {
			wg.Add(1)
			sem <- struct{}{}
			go func(gi int, evs []crm.Event) {
				defer wg.Done()
				defer func() { <-sem }()
				results[gi].n, results[gi].err = d.dispatchContact(ctx, cache, evs)
			}(gi, groups[contact])
		}
		wg.Wait()
		for gi, contact := range order {
			for _, ev := range groups[contact][:results[gi].n] {
				if err := crm.MarkDispatched(ctx, tx, ev.ID); err != nil {
					return err
				}
				done++
			}
			if results[gi].err != nil && failure == nil {
				failure = results[gi].err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return done, failure
}

// dispatchContact dispatches one contact's events in order, in one transaction, and reports
// how many it finished.
func (d *Dispatcher) dispatchContact(ctx context.Context, cache *batchCache, evs []crm.Event) (int, error) {
	n := 0
	var failure error
	err := crm.WithTx(ctx, d.DB, func(tx pgx.Tx) error {
		for _, ev := range evs {
			if err := d.dispatch(ctx, tx, cache, ev); err != nil {
				failure = fmt.Errorf("event %d (%s): %w", ev.ID, ev.Name, err)
				return nil
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, failure
}

// batchCache remembers, for one batch, which journeys listen for an event name.
type batchCache struct {
	db        *pgxpool.Pool
	mu        sync.Mutex
	triggered map[string][]crm.JourneyVersion
	segments  []crm.Segment
	segLoaded bool
}

func (c *batchCache) trackedSegments(ctx context.Context) ([]crm.Segment, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.segLoaded {
		segs, err := crm.TrackedSegments(ctx, c.db)
		if err != nil {
			return nil, err
		}
		c.segments, c.segLoaded = segs, true
	}
	return c.segments, nil
}

func (c *batchCache) triggeredBy(ctx context.Context, name string) ([]crm.JourneyVersion, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if js, ok := c.triggered[name]; ok {
		return js, nil
	}
	js, err := crm.TriggeredBy(ctx, c.db, name)
	if err != nil {
		return nil, err
	}
	c.triggered[name] = js
	return js, nil
}

func (d *Dispatcher) dispatch(ctx context.Context, tx pgx.Tx, cache *batchCache, ev crm.Event) error {
	cached, err := cache.triggeredBy(ctx, ev.Name)
	if err != nil {
		return err
	}
	journeys := append([]crm.JourneyVersion(nil), cached...)
	requested := ""
	if ev.Name == crm.StartJourneyEvent {
		// A start_journey step or the API asks for one journey, whatever its triggers.
		requested, _ = ev.Properties["journey"].(string)
		v, err := crm.JourneyByID(ctx, d.DB, requested, 0)
		switch {
		case errors.Is(err, crm.ErrNotFound):
			d.Logger.Warn("start requested for an unknown journey", "journey", requested, "event", ev.ID)
		case err != nil:
			return err
		case !v.Paused:
			journeys = append(journeys, *v)
		}
	}
	signal := contract.Event{ID: ev.ID, Name: ev.Name, Properties: ev.Properties, OccurredAt: ev.OccurredAt}
	triggered := make([]string, 0, len(journeys))
	for _, j := range journeys {
		trig := j.Definition.TriggeredBy(ev.Name, ev.Properties)
		if j.JourneyID == requested {
			trig = &journey.Trigger{Kind: "start_journey", Event: ev.Name}
		}
		if trig == nil {
			continue
		}
		enter, err := d.admit(ctx, tx, j, ev)
		if err != nil {
			return err
		}
		if !enter {
			continue
		}
		triggered = append(triggered, j.JourneyID)
		id := contract.WorkflowID(j.JourneyID, ev.ContactID)
		first := ""
		if len(j.Definition.Steps) > 0 {
			first = j.Definition.Steps[0].ID
		}
		opts := client.StartWorkflowOptions{
			ID:        id,
			TaskQueue: contract.TaskQueue,
			// A finished run may be followed by a new one when the trigger fires again; a running
			// one only hears the event.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				contract.AttrJourney.ValueSet(j.JourneyID),
				contract.AttrContact.ValueSet(fmt.Sprint(ev.ContactID)),
				contract.AttrStep.ValueSet(first),
				contract.AttrJourneyVersion.ValueSet(int64(j.Version)),
			),
			StaticSummary: fmt.Sprintf("%s v%d for contact %d (%s), triggered by %s", j.JourneyID, j.Version, ev.ContactID, ev.ExternalID, trig),
		}
		in := contract.Input{Journey: j.Definition, Version: j.Version, ContactID: ev.ContactID}
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		run, err := d.Temporal.SignalWithStartWorkflow(callCtx, id, contract.SignalEvent, signal, opts, contract.WorkflowType, in)
		cancel()
		if err != nil {
			return fmt.Errorf("signal-with-start %s: %w", id, err)
		}
		if err := crm.Enroll(ctx, tx, j.JourneyID, ev.ContactID, j.Version, id, run.GetRunID()); err != nil {
			return err
		}
		d.Logger.Debug("dispatched", "event", ev.ID, "workflow_id", id)
	}
	if err := d.watchCart(ctx, ev, signal); err != nil {
		return err
	}
	// Segments journeys trigger on: did this event take the contact in or out?
	if ev.Name != "segment_entered" && ev.Name != "segment_exited" {
		segs, err := cache.trackedSegments(ctx)
		if err != nil {
			return err
		}
		if len(segs) > 0 {
			if err := crm.RecheckMembership(ctx, tx, segs, ev.ContactID, time.Now()); err != nil {
				return err
			}
		}
	}
	// Runs already under way hear the events their exit, goals and wait-untils depend on.
	open, err := crm.Interested(ctx, tx, ev.ContactID, ev.Name, triggered)
	if err != nil {
		return err
	}
	for _, en := range open {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := d.Temporal.SignalWorkflow(callCtx, en.WorkflowID, en.RunID, contract.SignalEvent, signal)
		cancel()
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
			// The run has finished since: close its enrollment; nothing is lost.
			if err := crm.EndEnrollment(ctx, tx, en.JourneyID, ev.ContactID, en.RunID, time.Time{}); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("signal %s: %w", en.WorkflowID, err)
		}
	}
	return nil
}

// watchCart feeds the contact's cart watch: cart events start or restart it, an order ends it.
func (d *Dispatcher) watchCart(ctx context.Context, ev crm.Event, signal contract.Event) error {
	if d.CartIdle <= 0 {
		return nil
	}
	id := contract.CartWatchID(ev.ContactID)
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case slices.Contains(journey.CartEvents, ev.Name):
		_, err := d.Temporal.SignalWithStartWorkflow(callCtx, id, contract.SignalEvent, signal, client.StartWorkflowOptions{
			ID: id, TaskQueue: contract.TaskQueue, WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary: fmt.Sprintf("cart of contact %d (%s)", ev.ContactID, ev.ExternalID),
		}, contract.CartWatchType, contract.CartInput{ContactID: ev.ContactID, Idle: d.CartIdle})
		if err != nil {
			return fmt.Errorf("signal-with-start %s: %w", id, err)
		}
	case ev.Name == journey.EventOrderCompleted:
		err := d.Temporal.SignalWorkflow(callCtx, id, "", contract.SignalEvent, signal)
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("signal %s: %w", id, err)
		}
	}
	return nil
}

// admit applies the re-entry rule and the entry condition. An open run always hears the
// trigger (SignalWithStart reaches it); the rules decide only whether a new run may start.
func (d *Dispatcher) admit(ctx context.Context, tx pgx.Tx, j crm.JourneyVersion, ev crm.Event) (bool, error) {
	def := &j.Definition
	if def.Reentry.Mode == journey.ReentryAlways && def.Entry == nil {
		return true, nil // nothing to decide: SignalWithStart starts or signals as it should
	}
	last, err := crm.EnrollmentOf(ctx, tx, j.JourneyID, ev.ContactID)
	if err != nil {
		return false, err
	}
	open := last != nil && last.EndedAt == nil
	if open && def.Reentry.Mode != journey.ReentryAlways {
		// The row says open; ask Temporal whether that run has finished since.
		desc, err := d.Temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(j.JourneyID, ev.ContactID), last.RunID)
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
			open, last.EndedAt = false, &last.EnteredAt
		case err != nil:
			return false, fmt.Errorf("describe run of %s: %w", j.JourneyID, err)
		case desc.GetWorkflowExecutionInfo().GetCloseTime() != nil:
			closed := desc.GetWorkflowExecutionInfo().GetCloseTime().AsTime()
			open, last.EndedAt = false, &closed
		}
		if !open {
			if err := crm.EndEnrollment(ctx, tx, j.JourneyID, ev.ContactID, last.RunID, *last.EndedAt); err != nil {
				return false, err
			}
		}
	}
	if open {
		return true, nil
	}
	switch {
	case last != nil && def.Reentry.Mode == journey.ReentryOnce:
		return false, nil
	case last != nil && def.Reentry.Mode == journey.ReentryAfter && last.EndedAt != nil && time.Since(*last.EndedAt) < def.Reentry.Wait.D:
		return false, nil
	}
	if def.Entry != nil {
		ok, err := crm.Matches(ctx, d.DB, ev.ContactID, *def.Entry, crm.Env{Now: time.Now()})
		if err != nil {
			return false, fmt.Errorf("entry condition of %s: %w", j.JourneyID, err)
		}
		return ok, nil
	}
	return true, nil
}

// listen wakes the loop on every NOTIFY, reconnecting after errors.
func (d *Dispatcher) listen(ctx context.Context, wake chan<- struct{}) {
	for ctx.Err() == nil {
		err := d.listenOnce(ctx, d.DB, wake)
		if ctx.Err() != nil {
			return
		}
		d.Logger.Warn("event notifications lost; polling until reconnected", "error", err)
		sleep(ctx, time.Second)
	}
}

func (d *Dispatcher) listenOnce(ctx context.Context, pool *pgxpool.Pool, wake chan<- struct{}) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+crm.EventsChannel); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+crm.EventsChannel)
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
