package starter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/clock"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/telemetry"
)

// Dispatcher turns stored events into Temporal calls: for each event, a SignalWithStart of
// every journey it triggers and a signal to every open run that listens for it.
//
// It works in four steps, and never calls Temporal with a transaction open: claim (lease some
// contacts and read their pending events, one statement), decide (which journeys start,
// which runs hear it), call (Temporal), mark (the events done and the lease released, one
// statement). A contact is leased by one dispatcher at a time, so its events go
// out in the order they were accepted however many starters run. A failed event backs off
// its own contact only; one still failing after MaxAttempts is dead-lettered, and the
// contact's later events go on.
type Dispatcher struct {
	DB       *pgxpool.Pool
	Temporal client.Client
	Logger   *slog.Logger
	// Clock decides re-entry windows and entry conditions (nil: the system clock).
	Clock clock.Clock
	// Batch is how many contacts one claim leases (default 64); PerContact how many of a
	// contact's events it takes at once (default 50); PollEvery the fallback when no
	// notification arrives (default 1s).
	Batch      int
	PerContact int
	PollEvery  time.Duration
	// Concurrency bounds how many contacts' events are dispatched at once (default 128): calls
	// to Temporal take a while under load (a saturated server answers in 100 ms and more), and
	// this many are in flight; a contact holds a PostgreSQL connection only while deciding.
	Concurrency int
	// Lease is how long a claimed contact is held without renewal (default 30s): a starter
	// that dies holding contacts delays them this long at most.
	Lease time.Duration
	// MaxAttempts dead-letters an event that failed this many times (default 5). Failures to
	// reach Temporal at all are retried without limit: they are not the event's fault.
	MaxAttempts int
	// CartIdle is how long a cart may sit untouched before Cairn records cart_abandoned;
	// zero turns the detection off.
	CartIdle time.Duration
	// Gather spaces claims made on a wake-up (default 50ms): a claim comes at least this long
	// after the one before, so under load one claim takes the contacts of several events
	// instead of one each, while an event arriving after a quiet spell is claimed at once.
	// Every accepted event wakes every starter's dispatcher, so this also bounds how often each
	// of them claims while the queue is short: about 1/Gather times a second.
	Gather time.Duration
	// Owner names this dispatcher in leases (default host-pid-random).
	Owner string
	// down is told when a contact failed because Temporal did not answer.
	down chan struct{}
	// RepairEvery is how often the dispatcher asks Temporal about runs the CRM still records
	// as open (default 5m): a run terminated by hand, or one that failed before recording its
	// end, has its enrollment closed by this check. Each open run is asked about at most once
	// an hour.
	RepairEvery time.Duration
}

func (d *Dispatcher) defaults() {
	if d.Batch == 0 {
		d.Batch = 64
	}
	if d.PerContact == 0 {
		d.PerContact = 50
	}
	if d.PollEvery == 0 {
		d.PollEvery = time.Second
	}
	if d.Concurrency <= 0 {
		d.Concurrency = 128
	}
	if d.down == nil {
		d.down = make(chan struct{}, 1)
	}
	if d.Lease == 0 {
		d.Lease = 30 * time.Second
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 5
	}
	if d.Gather == 0 {
		d.Gather = 50 * time.Millisecond
	}
	if d.RepairEvery == 0 {
		d.RepairEvery = 5 * time.Minute
	}
	if d.Owner == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		d.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	d.Clock = clock.OrSystem(d.Clock)
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
}

// Run dispatches until ctx is cancelled. It keeps up to Concurrency contacts in flight,
// claiming more as soon as any finishes; it wakes on LISTEN/NOTIFY and polls as a fallback
// (which is also when backed-off contacts come due). While Temporal is unreachable it stops
// claiming for a while and leaves events queued, so nothing accepted is lost.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.defaults()
	wake := make(chan struct{}, 1)
	go d.listen(ctx, wake)
	go d.repairLoop(ctx)
	held := newHolding()
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewed := make(chan struct{})
	go func() { defer close(renewed); d.renew(renewCtx, held) }()
	var inflight sync.WaitGroup
	defer func() {
		inflight.Wait()
		stopRenew()
		<-renewed
		// Hand this dispatcher's contacts to the others at once rather than at lease expiry.
		if err := crm.ReleaseLeases(context.WithoutCancel(ctx), d.DB, d.Owner); err != nil {
			d.Logger.Warn("release dispatch leases", "error", err)
		}
	}()
	cache := newBatchCache(d.DB)
	freed := make(chan struct{}, 1)
	var running atomic.Int64
	backoff, pausedUntil, lastClaim := time.Duration(0), time.Time{}, time.Time{}
	for {
		free := int64(d.Concurrency) - running.Load()
		claimed := 0
		if free > 0 && time.Now().After(pausedUntil) && ctx.Err() == nil {
			if cache.age() > time.Second {
				cache = newBatchCache(d.DB) // journeys and segments applied since are seen within a second
			}
			lastClaim = time.Now()
			groups, err := d.claim(ctx, int(min(free, int64(d.Batch))))
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
				d.Logger.Warn("dispatch paused: cannot claim events; they stay queued", "error", err, "retry_in", backoff)
				pausedUntil = time.Now().Add(backoff)
			}
			for _, evs := range groups {
				held.add(evs[0].ContactID)
				running.Add(1)
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					out, down := d.dispatchContact(ctx, cache, held, evs)
					down = d.finish(ctx, held, out, down)
					running.Add(-1)
					if down {
						select {
						case d.down <- struct{}{}:
						default:
						}
					}
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
			claimed = len(groups)
		}
		if claimed > 0 && claimed == int(min(free, int64(d.Batch))) {
			continue // there may be more waiting
		}
		wait := d.PollEvery
		if until := time.Until(pausedUntil); until > 0 {
			wait = until
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.down:
			// Temporal did not answer: stop claiming for a while, longer each time in a row.
			backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
			pausedUntil = time.Now().Add(backoff)
			d.Logger.Warn("dispatch paused: Temporal is unreachable; events stay queued", "retry_in", backoff)
		case <-freed:
			if time.Now().After(pausedUntil) {
				backoff = 0
			}
			sleep(ctx, d.Gather-time.Since(lastClaim))
		case <-wake:
			sleep(ctx, d.Gather-time.Since(lastClaim))
		case <-time.After(wait):
		}
	}
}

// claim leases up to n contacts and returns their pending events, grouped by contact.
func (d *Dispatcher) claim(ctx context.Context, n int) ([][]crm.PendingEvent, error) {
	claimed, err := crm.ClaimContacts(ctx, d.DB, d.Owner, n, d.PerContact, d.Lease)
	if err != nil {
		return nil, err
	}
	var groups [][]crm.PendingEvent
	for i, ev := range claimed {
		if i == 0 || ev.ContactID != claimed[i-1].ContactID {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], ev)
	}
	return groups, nil
}

// finish records a contact's outcome and lets its lease go; it reports whether the failure,
// if any, was Temporal being unreachable.
func (d *Dispatcher) finish(ctx context.Context, held *holding, out crm.DispatchOutcome, down bool) bool {
	defer held.release(out.ContactID)
	if err := crm.FinishDispatch(context.WithoutCancel(ctx), d.DB, d.Owner, out); err != nil {
		d.Logger.Warn("record dispatch outcome; the contact is dispatched again when its lease expires",
			"contact", out.ContactID, "error", err)
	}
	return down
}

// errTemporalDown says every contact of a batch failed to reach Temporal.
var errTemporalDown = errors.New("Temporal is unreachable")

// DispatchOnce claims one batch of contacts, dispatches their events and waits for them, and
// reports how many events it finished (dispatched or dead-lettered). Contacts are dispatched
// in parallel (up to Concurrency), each one's events in order. Run does the same continuously;
// this is for tests and tools.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	d.defaults()
	groups, err := d.claim(ctx, d.Batch)
	if err != nil || len(groups) == 0 {
		return 0, err
	}
	held := newHolding()
	for _, g := range groups {
		held.add(g[0].ContactID)
	}
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() { defer close(renewed); d.renew(renewCtx, held) }()
	cache := newBatchCache(d.DB)
	var finished, unreachable atomic.Int64
	sem := make(chan struct{}, d.Concurrency)
	var wg sync.WaitGroup
	for _, evs := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, down := d.dispatchContact(ctx, cache, held, evs)
			if d.finish(ctx, held, out, down) {
				unreachable.Add(1)
			}
			finished.Add(int64(len(out.Done)))
			if out.Dead {
				finished.Add(1)
				telemetry.DeadLettered.Inc()
			}
		}()
	}
	wg.Wait()
	stopRenew()
	<-renewed
	if int(unreachable.Load()) == len(groups) {
		return int(finished.Load()), errTemporalDown
	}
	return int(finished.Load()), nil
}

// holding is the set of contacts this dispatcher holds leases on, each with whether it was lost.
type holding struct {
	mu   sync.Mutex
	held map[int64]*atomic.Bool
}

func newHolding() *holding { return &holding{held: map[int64]*atomic.Bool{}} }

func (h *holding) add(id int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held[id] = &atomic.Bool{}
}

func (h *holding) ids() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]int64, 0, len(h.held))
	for id := range h.held {
		out = append(out, id)
	}
	return out
}

func (h *holding) lost(id int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.held[id]
	return !ok || l.Load()
}

func (h *holding) markLost(kept []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, l := range h.held {
		if !slices.Contains(kept, id) {
			l.Store(true)
		}
	}
}

func (h *holding) release(id int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.held, id)
}

// renew extends the batch's leases every third of their length. A contact whose lease could
// not be renewed (it expired, and another dispatcher took it) is marked lost: this
// dispatcher makes no further call for it.
func (d *Dispatcher) renew(ctx context.Context, h *holding) {
	t := time.NewTicker(d.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids := h.ids()
		if len(ids) == 0 {
			continue
		}
		kept, err := crm.RenewLeases(ctx, d.DB, d.Owner, ids, d.Lease)
		if err != nil {
			d.Logger.Warn("renew dispatch leases", "error", err)
			continue
		}
		h.markLost(kept)
	}
}

// dispatchContact dispatches one contact's events in order and says what became of them;
// down reports that the failure was Temporal being unreachable.
func (d *Dispatcher) dispatchContact(ctx context.Context, cache *batchCache, held *holding, evs []crm.PendingEvent) (crm.DispatchOutcome, bool) {
	out := crm.DispatchOutcome{ContactID: evs[0].ContactID}
	for _, ev := range evs {
		if held.lost(ev.ContactID) {
			return out, false
		}
		// An event tried before may have reached some journeys already: check before starting.
		ectx, span := startDispatchSpan(ctx, ev)
		err := d.dispatch(ectx, cache, ev.Event, ev.Attempts > 0 || ev.Recovered)
		endSpan(span, err)
		if err == nil {
			out.Done = append(out.Done, ev.ID)
			telemetry.EventsDispatched.Inc()
			telemetry.Since(telemetry.DispatchLag, ev.ReceivedAt)
			continue
		}
		if ctx.Err() != nil {
			return out, false // stopping: the event is not at fault, and stays queued
		}
		transient := isTransient(err)
		switch {
		case transient && isUnreachable(err):
			telemetry.DispatchFailures.WithLabelValues("unreachable").Inc()
		case transient:
			telemetry.DispatchFailures.WithLabelValues("transient").Inc()
		default:
			telemetry.DispatchFailures.WithLabelValues("event").Inc()
		}
		attempts := ev.Attempts + 1
		out.Failed, out.Error = ev.ID, err.Error()
		out.Dead = !transient && attempts >= d.MaxAttempts
		out.RetryIn = retryDelay(attempts, transient)
		level := slog.LevelWarn
		if out.Dead {
			level = slog.LevelError
		}
		d.Logger.Log(ctx, level, "dispatch failed", "event", ev.ID, "event_name", ev.Name, "contact", ev.ContactID,
			"attempt", attempts, "dead_lettered", out.Dead, "retry_in", out.RetryIn, "error", err)
		return out, transient && isUnreachable(err)
	}
	return out, false
}

// startDispatchSpan starts the span of one event's dispatch as the child of the span that
// recorded the event (its stored traceparent), so the trace runs on from the HTTP request
// through the Temporal calls into the run.
func startDispatchSpan(ctx context.Context, ev crm.PendingEvent) (context.Context, trace.Span) {
	if !telemetry.TracingEnabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return telemetry.Tracer().Start(telemetry.WithTraceParent(ctx, ev.TraceParent), "dispatch event",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.Int64("cairn.event.id", ev.ID), attribute.String("cairn.event.name", ev.Name),
			attribute.Int("cairn.event.attempt", ev.Attempts+1)))
}

func endSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "dispatch failed")
	}
	span.End()
}

// retryDelay backs off a contact after its attempt-th failure: 200 ms doubling, up to a
// minute (30 s while Temporal is unreachable, so it resumes soon after it is back).
func retryDelay(attempt int, transient bool) time.Duration {
	d := 200 * time.Millisecond << min(attempt-1, 10)
	if transient {
		return min(d, 30*time.Second)
	}
	return min(d, time.Minute)
}

// isTransient says whether a dispatch error is the environment's rather than the event's:
// Temporal or PostgreSQL unreachable, overloaded or too slow. Such failures are retried
// without limit; any other error counts toward dead-lettering.
func isTransient(err error) bool {
	if isUnreachable(err) {
		return true
	}
	var exhausted *serviceerror.ResourceExhausted
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &exhausted):
		return true
	case errors.As(err, &pgErr):
		// Connection and operator-intervention classes: the database, not the event.
		return pgErr.Code[:2] == "08" || pgErr.Code[:2] == "57"
	case pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	}
	return false
}

// isUnreachable says whether the error means Temporal (or the network to it) is down.
func isUnreachable(err error) bool {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	var netErr net.Error
	return errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &netErr)
}

// batchCache remembers, for a second at most, which journeys listen for an event name and
// which segments journeys trigger on.
type batchCache struct {
	db        *pgxpool.Pool
	born      time.Time
	mu        sync.Mutex
	triggered map[string][]crm.JourneyVersion
	requested map[string]*crm.JourneyVersion
	segments  []crm.Segment
	segLoaded bool
}

func newBatchCache(db *pgxpool.Pool) *batchCache {
	return &batchCache{db: db, born: time.Now(), triggered: map[string][]crm.JourneyVersion{}}
}

func (c *batchCache) age() time.Duration { return time.Since(c.born) }

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

// callTimeout bounds each Temporal call.
const callTimeout = 10 * time.Second

// dispatch decides what one event causes and makes the calls. Every call carries the event's
// id, and a run ignores an event it has heard, so dispatching an event again after a partial
// failure repeats nothing; a start already made for this event is known from its enrollment.
func (d *Dispatcher) dispatch(ctx context.Context, cache *batchCache, ev crm.Event, retried bool) error {
	if !crm.Trusted(ev.Name, ev.Source) {
		// A row from before ingestion refused Cairn's own names: it starts and wakes nothing.
		d.Logger.Warn("ignored an event with a reserved name from an outside source", "event", ev.ID, "event_name", ev.Name, "source", ev.Source)
		return nil
	}
	cached, err := cache.triggeredBy(ctx, ev.Name)
	if err != nil {
		return err
	}
	journeys := append([]crm.JourneyVersion(nil), cached...)
	requested := ""
	if ev.Name == journey.EventStartRequested || ev.Name == journey.EventCampaignEntered {
		// A start_journey step, the API or a campaign asks for one journey, whatever its triggers.
		requested, _ = ev.Properties["journey"].(string)
		v, err := cache.requestedJourney(ctx, requested)
		switch {
		case err != nil:
			return err
		case v == nil:
			d.Logger.Warn("start requested for an unknown journey", "journey", requested, "event", ev.ID)
		case !v.Paused:
			journeys = append(journeys, *v)
		}
	}
	signal := contract.Event{ID: ev.ID, Name: ev.Name, Properties: ev.Properties, OccurredAt: ev.OccurredAt, Changed: ev.Changed}
	if ev.Name == journey.EventAlias {
		signal.ContactIDs = contactIDs(ev)
	}
	// reached: the journeys whose one run the trigger reached; reachedRuns: every run it
	// reached (those of keyed journeys too), which hear nothing more of this event.
	reached, reachedRuns := make([]string, 0, len(journeys)), make([]string, 0, len(journeys))
	for _, j := range journeys {
		trig := j.Definition.TriggeredBy(ev.Name, ev.Properties)
		if j.JourneyID == requested {
			trig = &journey.Trigger{Kind: "start_journey", Event: ev.Name}
		}
		if trig == nil {
			continue
		}
		runKey := runKeyOf(j, ev)
		decision, err := d.admit(ctx, j, ev, runKey, retried)
		if err != nil {
			return err
		}
		if decision == refused {
			continue
		}
		reachedRuns = append(reachedRuns, contract.KeyedWorkflowID(j.JourneyID, ev.ContactID, runKey))
		if runKey == "" {
			reached = append(reached, j.JourneyID)
		}
		if decision == alreadyDone {
			continue
		}
		if err := d.start(ctx, j, ev, runKey, trig, signal); err != nil {
			return err
		}
	}
	if err := d.watchCart(ctx, ev, signal); err != nil {
		return err
	}
	// Segments journeys trigger on: did this event take the contact in or out?
	if ev.Name != journey.EventSegmentEntered && ev.Name != journey.EventSegmentExited {
		segs, err := cache.trackedSegments(ctx)
		if err != nil {
			return err
		}
		if len(segs) > 0 {
			now, start := d.Clock.Now(), time.Now()
			err := crm.WithTx(ctx, d.DB, func(tx pgx.Tx) error { return crm.RecheckMembership(ctx, tx, segs, ev.ContactID, now) })
			telemetry.Since(telemetry.SegmentQueryDuration.WithLabelValues("recheck"), start)
			if err != nil {
				return err
			}
		}
	}
	// Runs already under way hear the events their exit, goals and waits depend on; an alias
	// reaches every run, which keeps its contact's search attributes current.
	var open []crm.Enrollment
	if ev.Name == journey.EventAlias {
		open, err = crm.OpenRuns(ctx, d.DB, ev.ContactID)
	} else {
		open, err = crm.Interested(ctx, d.DB, ev.ContactID, interests(ev), reached)
	}
	if err != nil {
		return err
	}
	for _, en := range open {
		if slices.Contains(reachedRuns, en.WorkflowID) {
			continue
		}
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		err := signalChain(callCtx, d.Temporal, en.WorkflowID, en.RunID, contract.SignalEvent, signal)
		cancel()
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
			// The run has finished since: close its enrollment; nothing is lost.
			if err := crm.EndEnrollment(ctx, d.DB, en.JourneyID, ev.ContactID, en.RunID, d.Clock.Now()); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("signal %s: %w", en.WorkflowID, err)
		}
	}
	return nil
}

// interests are what an event is heard as by open runs: its name, and each field it changed.
func interests(ev crm.Event) []string {
	out := []string{ev.Name}
	for _, f := range ev.Changed {
		out = append(out, journey.FieldInterest(f))
	}
	return out
}

// contactIDs are every id the event's contact is known by, its current one first.
func contactIDs(ev crm.Event) []string {
	return append([]string{ev.ExternalID}, ev.Aliases...)
}

// start SignalWithStarts the journey's run for the contact (and run key) and records the
// enrollment.
func (d *Dispatcher) start(ctx context.Context, j crm.JourneyVersion, ev crm.Event, runKey string, trig *journey.Trigger, signal contract.Event) error {
	id := contract.KeyedWorkflowID(j.JourneyID, ev.ContactID, runKey)
	first := ""
	if len(j.Definition.Steps) > 0 {
		first = j.Definition.Steps[0].ID
	}
	var err error
	reuse := enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	if j.Definition.Reentry.Mode == journey.ReentryOnce {
		// Once means once: Temporal itself refuses a second run, whatever the enrollment row says.
		reuse = enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
	}
	opts := client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: contract.TaskQueue,
		// A finished run may be followed by a new one when the trigger fires again; a running
		// one only hears the event.
		WorkflowIDReusePolicy: reuse,
		TypedSearchAttributes: temporal.NewSearchAttributes(append(contract.ContactAttributes(ev.ExternalID, ev.Aliases),
			contract.AttrJourney.ValueSet(j.JourneyID),
			contract.AttrStep.ValueSet(first),
			contract.AttrJourneyVersion.ValueSet(int64(j.Version)),
		)...),
		StaticSummary: fmt.Sprintf("%s v%d for contact %d, triggered by %s", j.JourneyID, j.Version, ev.ContactID, trig),
	}
	in := contract.Input{Journey: j.Definition, Version: j.Version, ContactID: ev.ContactID, Revision: contract.Revision}
	if in.Checked, err = d.entryChecks(ctx, j, ev.ContactID, ev.Properties); err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	run, err := d.Temporal.SignalWithStartWorkflow(callCtx, id, contract.SignalEvent, signal, opts, contract.WorkflowType, in)
	cancel()
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		return nil // a once-only journey the contact already went through
	case err != nil:
		return fmt.Errorf("signal-with-start %s: %w", id, err)
	}
	if err := d.enrollRun(ctx, j, ev, runKey, id, run.GetRunID()); err != nil {
		return err
	}
	d.Logger.Debug("dispatched", "event", ev.ID, "workflow_id", id)
	return nil
}

// entryChecks evaluates the journey's exit and goal conditions for a run about to start, so
// the run need not ask the CRM again before its first step (nil when it has neither).
// trigger is the properties of the event starting it, for keyed values.
func (d *Dispatcher) entryChecks(ctx context.Context, j crm.JourneyVersion, contactID int64, trigger map[string]any) (*contract.EntryChecks, error) {
	def := &j.Definition
	if def.Exit == nil && len(def.Goals) == 0 {
		return nil, nil
	}
	now := d.Clock.Now()
	env := crm.Env{Now: now, EnteredAt: now, Trigger: trigger}
	out := &contract.EntryChecks{}
	if def.Exit != nil {
		met, err := crm.Matches(ctx, d.DB, contactID, *def.Exit, env)
		if err != nil {
			return nil, fmt.Errorf("exit condition of %s: %w", j.JourneyID, err)
		}
		if out.Exited = met; met {
			return out, nil
		}
	}
	for _, g := range def.Goals {
		met, err := crm.Matches(ctx, d.DB, contactID, g.When, env)
		if err != nil {
			return nil, fmt.Errorf("goal %s of %s: %w", g.ID, j.JourneyID, err)
		}
		if met {
			out.GoalsMet = append(out.GoalsMet, g.ID)
		}
	}
	return out, nil
}

// watchCart feeds the contact's cart watch: cart events start or restart it, an order ends it.
func (d *Dispatcher) watchCart(ctx context.Context, ev crm.Event, signal contract.Event) error {
	if d.CartIdle <= 0 {
		return nil
	}
	id := contract.CartWatchID(ev.ContactID)
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	switch {
	case slices.Contains(journey.CartEvents, ev.Name):
		_, err := d.Temporal.SignalWithStartWorkflow(callCtx, id, contract.SignalEvent, signal, client.StartWorkflowOptions{
			ID: id, TaskQueue: contract.TaskQueue, WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			TypedSearchAttributes: temporal.NewSearchAttributes(contract.ContactAttributes(ev.ExternalID, ev.Aliases)...),
			StaticSummary:         fmt.Sprintf("cart of contact %d", ev.ContactID),
		}, contract.CartWatchType, contract.CartInput{ContactID: ev.ContactID, Contact: ev.ExternalID, Idle: d.CartIdle})
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

// admission is what the re-entry rule and the entry condition decide for one trigger.
type admission int

const (
	refused admission = iota
	admitted
	// alreadyDone: this event already reached the journey (a retried dispatch).
	alreadyDone
)

// admit applies the re-entry rule and the entry condition. An open run always hears the
// trigger (SignalWithStart reaches it); the rules decide only whether a new run may start.
// retried says the event may have been dispatched in part before.
func (d *Dispatcher) admit(ctx context.Context, j crm.JourneyVersion, ev crm.Event, runKey string, retried bool) (admission, error) {
	def := &j.Definition
	if def.Reentry.Mode == journey.ReentryAlways && def.Entry == nil && !retried {
		return admitted, nil // nothing to decide: SignalWithStart starts or signals as it should
	}
	last, err := crm.EnrollmentOf(ctx, d.DB, j.JourneyID, ev.ContactID, runKey)
	if err != nil {
		return refused, err
	}
	if last != nil && last.EventID == ev.ID {
		return alreadyDone, nil
	}
	if retried {
		// The start may have gone through unrecorded, and its run ended since: then the run's
		// end names this event.
		ended, err := crm.RunEndedFor(ctx, d.DB, j.JourneyID, ev.ContactID, ev.ID)
		if err != nil {
			return refused, err
		}
		if ended {
			return alreadyDone, nil
		}
	}
	open := last != nil && last.EndedAt == nil
	if open && def.Reentry.Mode != journey.ReentryAlways {
		// The row says open; ask Temporal whether that run has finished since.
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		info, err := describeChain(callCtx, d.Temporal, contract.KeyedWorkflowID(j.JourneyID, ev.ContactID, runKey), last.RunID)
		cancel()
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
			open, last.EndedAt = false, &last.EnteredAt
		case err != nil:
			return refused, fmt.Errorf("describe run of %s: %w", j.JourneyID, err)
		case info.GetCloseTime() != nil:
			closed := info.GetCloseTime().AsTime()
			open, last.EndedAt = false, &closed
		}
		if !open {
			if err := crm.EndEnrollment(ctx, d.DB, j.JourneyID, ev.ContactID, last.RunID, *last.EndedAt); err != nil {
				return refused, err
			}
		}
	}
	if open {
		return admitted, nil
	}
	now := d.Clock.Now()
	switch {
	case last != nil && def.Reentry.Mode == journey.ReentryOnce:
		return refused, nil
	case last != nil && def.Reentry.Mode == journey.ReentryAfter && last.EndedAt != nil && now.Sub(*last.EndedAt) < def.Reentry.Wait.D:
		return refused, nil
	}
	if def.Entry != nil {
		ok, err := crm.Matches(ctx, d.DB, ev.ContactID, *def.Entry, crm.Env{Now: now, Trigger: ev.Properties})
		if err != nil {
			return refused, fmt.Errorf("entry condition of %s: %w", j.JourneyID, err)
		}
		if !ok {
			return refused, nil
		}
	}
	return admitted, nil
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
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// repairLoop closes the enrollments of runs that ended without telling the CRM, every
// RepairEvery, a batch at a time.
func (d *Dispatcher) repairLoop(ctx context.Context) {
	for sleep(ctx, d.RepairEvery) {
		for {
			n, err := d.RepairEnrollments(ctx)
			if err != nil {
				d.Logger.Warn("check open runs", "error", err)
			}
			if err != nil || n < repairBatch {
				break
			}
		}
	}
}

const repairBatch = 200

// RepairEnrollments asks Temporal about up to 200 runs the CRM records as open and not
// checked within the hour, and closes the enrollments of those that are over (terminated,
// timed out, failed, or gone). It reports how many it checked.
func (d *Dispatcher) RepairEnrollments(ctx context.Context) (int, error) {
	d.defaults()
	rows, err := crm.ClaimOpenEnrollments(ctx, d.DB, time.Hour, repairBatch)
	if err != nil {
		return 0, err
	}
	for _, en := range rows {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		info, err := describeChain(callCtx, d.Temporal, en.WorkflowID, en.RunID)
		cancel()
		var notFound *serviceerror.NotFound
		ended := time.Time{}
		switch {
		case errors.As(err, &notFound):
			ended = d.Clock.Now()
		case err != nil:
			return len(rows), fmt.Errorf("describe %s: %w", en.WorkflowID, err)
		case info.GetCloseTime() != nil:
			ended = info.GetCloseTime().AsTime()
		}
		if ended.IsZero() {
			continue
		}
		if err := crm.EndEnrollment(ctx, d.DB, en.JourneyID, en.ContactID, en.RunID, ended); err != nil {
			return len(rows), err
		}
		d.Logger.Info("closed the enrollment of a run that ended without recording it", "workflow_id", en.WorkflowID,
			"status", info.GetStatus().String())
	}
	return len(rows), nil
}
