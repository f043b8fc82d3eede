// Package simulation runs a journey for one made-up contact without sending anything or
// touching the CRM: the real interpreter (ContactJourney) in Temporal's time-skipping test
// environment, the real activities against a scratch copy of the CRM inside a transaction that
// is rolled back, and deliveries captured instead of sent. Ninety days of waits pass in
// milliseconds; the result is the path with virtual times, every message rendered, the goals
// met and where the run ended.
package simulation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/workflows"
)

// Contact is who the simulation runs the journey for: the contact a scratch CRM starts with.
type Contact struct {
	// ID is the contact's own id (its userId); "simulated" when empty.
	ID     string         `json:"id,omitempty" yaml:"id"`
	Email  string         `json:"email,omitempty" yaml:"email"`
	Traits map[string]any `json:"traits,omitempty" yaml:"traits"`
	Tags   []string       `json:"tags,omitempty" yaml:"tags"`
	// Lists the contact is subscribed to.
	Lists []string `json:"lists,omitempty" yaml:"lists"`
	// Scores by name ("" is the default score).
	Scores map[string]float64 `json:"scores,omitempty" yaml:"scores"`
}

// Event is something that happens to the contact At after it enters the journey: a track
// event (Name and Properties), or, named identify, a change of Traits. Cairn's own names
// (email_opened with {template: welcome}, tag_added, …) are allowed: a simulation plays what
// Cairn would record.
type Event struct {
	At         journey.Duration `json:"at" yaml:"at"`
	Name       string           `json:"event" yaml:"event"`
	Properties map[string]any   `json:"properties,omitempty" yaml:"properties"`
	Traits     map[string]any   `json:"traits,omitempty" yaml:"traits"`
}

// Input is one simulation.
type Input struct {
	Journey journey.Journey
	// Version is the version number the run carries (1 when 0).
	Version int
	Contact Contact
	Events  []Event
	// Start is the virtual time the contact enters (now when zero).
	Start time.Time
	// Horizon is the virtual time after which a run still waiting is stopped (DefaultHorizon
	// when zero): a wait without a timeout would otherwise never end.
	Horizon time.Duration
	// Templates are put in the scratch CRM beside (or instead of) the CRM's own: a journey
	// file's templates, simulated before they are applied.
	Templates []email.Template
}

// DefaultHorizon stops a simulated run still waiting two years after it entered.
const DefaultHorizon = 2 * 365 * 24 * time.Hour

// Result is what the run did.
type Result struct {
	Journey string    `json:"journey"`
	Version int       `json:"version"`
	Contact string    `json:"contact"`
	Start   time.Time `json:"start"`
	// Entered is false when the journey's entry condition does not hold for the contact.
	Entered bool `json:"entered"`
	// Status is how the run ended: completed, exited, failed, or stopped (still waiting at
	// the horizon); Step is the step it ended at; EndedAt is when, in virtual time.
	Status   string           `json:"status"`
	Step     string           `json:"step,omitempty"`
	EndedAt  time.Time        `json:"ended_at"`
	Error    string           `json:"error,omitempty"`
	Path     []contract.Visit `json:"path"`
	GoalsMet []string         `json:"goals_met"`
	Messages []Message        `json:"messages"`
	// Heard are the events the run was told about, as the dispatcher would have told it.
	Heard []contract.Event `json:"heard"`
	// Took is the wall-clock time the simulation took.
	Took time.Duration `json:"took_ns"`
}

// StatusStopped is a run still waiting when the simulation reached its horizon.
const StatusStopped = "stopped"

// InputError is a simulation refused for what it was given: a contact or an event the CRM
// does not take. Path says which (contact, events[2]).
type InputError struct {
	Path string
	Err  error
}

func (e *InputError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Run simulates in.Journey for in.Contact inside a transaction on db, which it rolls back:
// the CRM db points at is read (templates, pipelines, scoring rules, field definitions) and
// never written.
func Run(ctx context.Context, db crm.DB, in Input) (*Result, error) {
	began := time.Now()
	if in.Version == 0 {
		in.Version = 1
	}
	if in.Start.IsZero() {
		in.Start = time.Now().UTC().Truncate(time.Second)
	}
	if in.Horizon <= 0 {
		in.Horizon = DefaultHorizon
	}
	if in.Contact.ID == "" {
		in.Contact.ID = "simulated"
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := crm.Scratch(ctx, tx); err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	for _, t := range in.Templates {
		if _, err := crm.PutTemplate(ctx, tx, t); err != nil {
			return nil, fmt.Errorf("simulation: %w", err)
		}
	}
	if _, err := crm.JourneyByID(ctx, tx, in.Journey.ID, 0); errors.Is(err, crm.ErrNotFound) {
		if _, _, err := crm.ApplyJourney(ctx, tx, &in.Journey, ""); err != nil {
			return nil, fmt.Errorf("simulation: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	s := &sim{in: in, db: &serialDB{tx: tx}, res: &Result{Journey: in.Journey.ID, Version: in.Version, Contact: in.Contact.ID,
		Start: in.Start, Path: []contract.Visit{}, GoalsMet: []string{}, Messages: []Message{}, Heard: []contract.Event{}}}
	if err := s.seed(ctx); err != nil {
		return nil, &InputError{Path: "contact", Err: err}
	}
	if j := in.Journey; j.Entry != nil {
		ok, err := crm.Matches(ctx, s.db, s.contactID, *j.Entry, crm.Env{Now: in.Start, EnteredAt: in.Start})
		if err != nil {
			return nil, fmt.Errorf("simulation: entry condition: %w", err)
		}
		if !ok {
			s.res.Status, s.res.EndedAt, s.res.Took = "not entered", in.Start, time.Since(began)
			s.res.Error = "the entry condition does not hold for the contact: " + j.Entry.String()
			return s.res, nil
		}
	}
	s.res.Entered = true
	if err := s.run(ctx); err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	s.res.Took = time.Since(began)
	return s.res, nil
}

// RunOn is Run on the PostgreSQL at url, which it only reads (a database without Cairn's CRM
// will do: the scratch CRM then starts empty).
func RunOn(ctx context.Context, url string, in Input) (*Result, error) {
	pool, err := crm.Connect(ctx, url, 2)
	if err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	defer pool.Close()
	return Run(ctx, pool, in)
}

// sim is one simulation under way.
type sim struct {
	in        Input
	db        *serialDB
	res       *Result
	contactID int64
	env       *testsuite.TestWorkflowEnvironment
	// interests are what the run listens for; seen is the last event handed to it.
	interests map[string]bool
	seen      int64
	mu        sync.Mutex
	failed    error
}

// before is just before the contact enters: when its starting state was recorded.
func (s *sim) before() time.Time { return s.in.Start.Add(-time.Second) }

// seed makes the contact in the scratch CRM through the CRM's own writers.
func (s *sim) seed(ctx context.Context) error {
	c := s.in.Contact
	traits := map[string]any{}
	for k, v := range c.Traits {
		traits[k] = v
	}
	if c.Email != "" {
		traits["email"] = c.Email
	}
	if _, _, err := crm.RecordEvent(ctx, s.db, crm.EventInput{ExternalID: c.ID, Traits: traits, Name: journey.EventIdentify,
		Source: crm.SourceAPI, OccurredAt: s.before()}); err != nil {
		return err
	}
	contact, err := crm.ContactByExternalID(ctx, s.db, c.ID)
	if err != nil {
		return err
	}
	s.contactID = contact.ID
	act := func(what string) crm.Action {
		return crm.Action{Key: "simulation:" + what, ContactID: s.contactID, At: s.before()}
	}
	for _, tag := range c.Tags {
		if _, err := crm.AddTag(ctx, s.db, act("tag:"+tag), tag); err != nil {
			return err
		}
	}
	for _, list := range c.Lists {
		if _, err := crm.SetSubscription(ctx, s.db, act("list:"+list), list, true); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(c.Scores))
	for name := range c.Scores {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := crm.AdjustScore(ctx, s.db, act("score:"+name), name, c.Scores[name], "simulation"); err != nil {
			return err
		}
	}
	last, err := crm.ContactEventsAfter(ctx, s.db, s.contactID, 0)
	if err != nil {
		return err
	}
	if n := len(last); n > 0 {
		s.seen = last[n-1].ID // the contact's past: the run does not hear it
	}
	return nil
}

// run executes ContactJourney in the time-skipping environment.
func (s *sim) run(ctx context.Context) error {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	s.env = env
	env.SetStartTime(s.in.Start)
	env.SetTestTimeout(time.Minute)
	j := s.in.Journey
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: contract.WorkflowID(j.ID, s.contactID), TaskQueue: contract.TaskQueue})
	env.RegisterWorkflowWithOptions(workflows.ContactJourney, workflow.RegisterOptions{Name: contract.WorkflowType})
	acts := &activities.Activities{DB: s.db, Clock: envClock{env}}
	deliveries(acts, s)
	env.RegisterActivity(&simActivities{Activities: acts})

	s.interests = map[string]bool{}
	for _, name := range j.Interests() {
		s.interests[name] = true
	}
	// Whatever the run's steps record (a tag it adds, an email it sends) reaches it as the
	// dispatcher would bring it, once the step is done.
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) { s.pump(ctx) })
	env.SetOnLocalActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) { s.pump(ctx) })
	// The trigger: recorded and heard at entry, as a SignalWithStart brings it.
	if t := j.Triggers; len(t) > 0 && t[0].Event != "" {
		props := map[string]any{}
		for k, v := range t[0].Where {
			props[k] = v
		}
		switch t[0].Event {
		case journey.EventObjectCreated, journey.EventObjectChanged:
			// The CRM records these itself as a record is written: write one, with the fields
			// the trigger asks for (a new record, so the run hears object_created first).
			typ, _ := props["object"].(string)
			delete(props, "object")
			env.RegisterDelayedCallback(func() { s.record(ctx, typ, props) }, 0)
		default:
			env.RegisterDelayedCallback(func() { s.happen(ctx, -1, Event{Name: t[0].Event, Properties: props}) }, 0)
		}
	}
	for i, ev := range s.in.Events {
		if ev.Name == journey.EventAlias {
			return &InputError{Path: fmt.Sprintf("events[%d].event", i), Err: errors.New("an alias changes who the contact is: a simulation has one contact")}
		}
		env.RegisterDelayedCallback(func() { s.happen(ctx, i, ev) }, ev.At.D)
	}
	stopped := false
	env.RegisterDelayedCallback(func() {
		if !env.IsWorkflowCompleted() {
			stopped = true
			env.CancelWorkflow()
		}
	}, s.in.Horizon)
	env.ExecuteWorkflow(contract.WorkflowType, contract.Input{Journey: j, Version: s.in.Version, ContactID: s.contactID, Revision: contract.Revision})
	if s.failed != nil {
		return s.failed
	}
	var st contract.State
	if v, err := env.QueryWorkflow(contract.QueryState); err == nil {
		_ = v.Get(&st)
	}
	if err := env.GetWorkflowError(); err != nil && !stopped {
		s.res.Error = err.Error()
	}
	if st.Status == "" {
		if err := env.GetWorkflowResult(&st); err != nil && s.res.Error == "" {
			s.res.Error = err.Error()
		}
	}
	s.res.Path, s.res.GoalsMet, s.res.Status, s.res.EndedAt = st.Path, st.GoalsMet, st.Status, env.Now()
	if stopped {
		s.res.Status = StatusStopped
		s.res.Error = fmt.Sprintf("still %s at %s after %s: the simulation stops there", st.WaitingFor, st.CurrentStep, s.in.Horizon)
	}
	if n := len(st.Path); n > 0 {
		s.res.Step = st.Path[n-1].Step
	}
	if s.res.Path == nil {
		s.res.Path = []contract.Visit{}
	}
	if s.res.GoalsMet == nil {
		s.res.GoalsMet = []string{}
	}
	sort.SliceStable(s.res.Messages, func(a, b int) bool { return s.res.Messages[a].At.Before(s.res.Messages[b].At) })
	return nil
}

// happen records one of the contact's events (i in Input.Events; -1 for the trigger) in the
// scratch CRM, then hands the run what it listens for.
func (s *sim) happen(ctx context.Context, i int, ev Event) {
	in := crm.EventInput{ExternalID: s.in.Contact.ID, Name: ev.Name, Properties: ev.Properties, Traits: ev.Traits,
		Source: crm.SourceAPI, OccurredAt: s.env.Now()}
	if _, _, err := crm.RecordEvent(ctx, s.db, in); err != nil {
		path := "trigger"
		if i >= 0 {
			path = fmt.Sprintf("events[%d]", i)
		}
		s.fail(&InputError{Path: path, Err: err})
		return
	}
	s.pump(ctx)
}

// simulatedRecord is the id of the record an object trigger's simulation writes.
const simulatedRecord = "simulated"

// record writes the custom object record an object trigger starts the run with.
func (s *sim) record(ctx context.Context, typ string, fields map[string]any) {
	if _, _, err := crm.PutRecord(ctx, s.db, typ, simulatedRecord, s.in.Contact.ID, fields, s.env.Now()); err != nil {
		s.fail(&InputError{Path: "trigger", Err: err})
		return
	}
	s.pump(ctx)
}

// pump hands the run the contact's new events its exit, goals and waits listen for, as the
// dispatcher routes them: by name, or by a field they changed.
func (s *sim) pump(ctx context.Context) {
	if s.env.IsWorkflowCompleted() {
		return
	}
	evs, err := crm.ContactEventsAfter(ctx, s.db, s.contactID, s.seen)
	if err != nil {
		s.fail(err)
		return
	}
	for _, e := range evs {
		s.seen = e.ID
		heard := s.interests[e.Name]
		for _, f := range e.Changed {
			heard = heard || s.interests[journey.FieldInterest(f)]
		}
		if !heard {
			continue
		}
		signal := contract.Event{ID: e.ID, Name: e.Name, Properties: e.Properties, OccurredAt: e.OccurredAt, Changed: e.Changed}
		s.res.Heard = append(s.res.Heard, signal)
		s.env.SignalWorkflow(contract.SignalEvent, signal)
	}
}

func (s *sim) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = err
		s.env.CancelWorkflow()
	}
}

// envClock is the activities' clock: the test environment's virtual time.
type envClock struct {
	env *testsuite.TestWorkflowEnvironment
}

func (c envClock) Now() time.Time { return c.env.Now() }
