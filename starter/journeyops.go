package starter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/simulation"
)

// missingTemplates are problems for the journey's send_email steps whose template does not
// exist, each at its step's path.
func missingTemplates(ctx context.Context, db crm.DB, j *journey.Journey) ([]journey.Problem, error) {
	refs := j.TemplateRefs()
	var ids []string
	for _, r := range refs {
		if !slices.Contains(ids, r.Template) {
			ids = append(ids, r.Template)
		}
	}
	missing, err := crm.MissingTemplates(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	var probs []journey.Problem
	for _, r := range refs {
		if slices.Contains(missing, r.Template) {
			probs = append(probs, journey.Problem{Path: r.Path,
				Message: fmt.Sprintf("template %q does not exist (PUT /v1/templates/%s first)", r.Template, r.Template)})
		}
	}
	return probs, nil
}

// temporalDown is the answer when Temporal cannot be asked.
func temporalDown(err error) error {
	return &apiError{Status: http.StatusServiceUnavailable, Code: "temporal_unavailable",
		Message: "Temporal did not answer: " + err.Error()}
}

// runningQuery is the visibility query of a journey's running runs (of one version when
// version > 0, at one step when step is set). Journey and step ids hold no quotes.
func runningQuery(journeyID string, version int, step string) string {
	q := fmt.Sprintf("%s = '%s' AND ExecutionStatus = 'Running'", contract.AttrJourney.GetName(), journeyID)
	if version > 0 {
		q += fmt.Sprintf(" AND %s = %d", contract.AttrJourneyVersion.GetName(), version)
	}
	if step != "" {
		q += fmt.Sprintf(" AND %s = '%s'", contract.AttrStep.GetName(), step)
	}
	return q
}

// count asks Temporal's visibility how many runs match.
func (a *API) count(ctx context.Context, query string) (int64, error) {
	if a.Temporal == nil {
		return 0, errors.New("no Temporal client")
	}
	resp, err := a.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}

// countAtSteps counts the journey's running runs at each step (of version, when > 0), a few
// steps at a time. A run that is over keeps its last CairnStep, so only running runs count.
func (a *API) countAtSteps(ctx context.Context, journeyID string, version int, steps []string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out := make(map[string]int64, len(steps))
	var mu sync.Mutex
	var first error
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for step := range work {
				n, err := a.count(ctx, runningQuery(journeyID, version, step))
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				out[step] = n
				mu.Unlock()
			}
		}()
	}
	for _, s := range steps {
		work <- s
	}
	close(work)
	wg.Wait()
	return out, first
}

// stepLink opens Temporal UI on the journey's runs at a step now.
func (a *API) stepLink(journeyID, step string) string {
	if a.TemporalUI == "" {
		return ""
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows?query=%s", strings.TrimSuffix(a.TemporalUI, "/"), url.PathEscape(a.Namespace),
		url.QueryEscape(runningQuery(journeyID, 0, step)))
}

// allSteps lists the step ids of every version of a journey, the newest version's first, in
// its order, then the ones only older versions have.
func (a *API) allSteps(ctx context.Context, journeyID string) (*crm.JourneyVersion, []string, error) {
	newest, err := crm.JourneyByID(ctx, a.DB, journeyID, 0)
	if err != nil {
		return nil, nil, err
	}
	steps := newest.Definition.StepIDs()
	for v := newest.Version - 1; v >= 1; v-- {
		old, err := crm.JourneyByID(ctx, a.DB, journeyID, v)
		if err != nil {
			return nil, nil, err
		}
		for _, id := range old.Definition.StepIDs() {
			if !slices.Contains(steps, id) {
				steps = append(steps, id)
			}
		}
	}
	return newest, steps, nil
}

// StepCount is how many contacts are at a step now, with a link to them in Temporal UI.
type StepCount struct {
	Step       string `json:"step"`
	Contacts   int64  `json:"contacts"`
	TemporalUI string `json:"temporal_ui,omitempty"`
}

// Stats is GET /v1/journeys/{id}/stats.
type Stats struct {
	Journey string `json:"journey"`
	Version int    `json:"version"`
	// Now is the contacts at each step of any version now, from Temporal's visibility;
	// NowNote says why it is missing when Temporal did not answer.
	Now     []StepCount `json:"now"`
	NowNote string      `json:"now_note,omitempty"`
	crm.JourneyStats
}

// stats reads a journey's counts: where its contacts are now (Temporal), and its runs, goals
// and emails (the CRM).
func (a *API) stats(ctx context.Context, journeyID string) (*Stats, error) {
	newest, steps, err := a.allSteps(ctx, journeyID)
	if err != nil {
		return nil, err
	}
	crmStats, err := crm.Stats(ctx, a.DB, journeyID)
	if err != nil {
		return nil, err
	}
	out := &Stats{Journey: journeyID, Version: newest.Version, Now: []StepCount{}, JourneyStats: *crmStats}
	counts, err := a.countAtSteps(ctx, journeyID, 0, steps)
	if err != nil {
		out.NowNote = "Temporal did not answer: " + err.Error()
	}
	for _, s := range steps {
		out.Now = append(out.Now, StepCount{Step: s, Contacts: counts[s], TemporalUI: a.stepLink(journeyID, s)})
	}
	return out, nil
}

// journeyStats serves GET /v1/journeys/{id}/stats.
func (a *API) journeyStats(w http.ResponseWriter, r *http.Request) error {
	st, err := a.stats(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// archiveJourney serves POST /v1/journeys/{id}/archive (body {"cancel_runs": true} to cancel
// the runs in flight too) and /unarchive.
func (a *API) archiveJourney(archived bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			CancelRuns bool `json:"cancel_runs"`
		}
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		if !archived && body.CancelRuns {
			return badRequest("cancel_runs", "cancel_runs belongs to archive")
		}
		id := r.PathValue("id")
		v, err := crm.ArchiveJourney(r.Context(), a.DB, id, archived, a.Now())
		if err != nil {
			return err
		}
		out := map[string]any{"id": id, "archived": archived, "archived_at": v.ArchivedAt}
		if body.CancelRuns {
			n, err := a.cancelRuns(r.Context(), id)
			out["cancelled"] = n
			if err != nil {
				out["cancel_note"] = "not every run could be cancelled: " + err.Error()
			}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// cancelRuns asks every running run of the journey to cancel: each records its end as
// cancelled.
func (a *API) cancelRuns(ctx context.Context, journeyID string) (int, error) {
	runs, err := a.runningRuns(ctx, runningQuery(journeyID, 0, ""))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, run := range runs {
		err := a.Temporal.CancelWorkflow(ctx, run.WorkflowID, run.RunID)
		var nf *serviceerror.NotFound
		switch {
		case err == nil:
			n++
		case errors.As(err, &nf): // over meanwhile
		default:
			return n, err
		}
	}
	return n, nil
}

// runRef is a run visibility lists, at the step its CairnStep says.
type runRef struct {
	WorkflowID, RunID, Step string
}

// runningRuns lists every run matching query, all pages, before anything is done to them: a
// run that changes (moves to another version) must not shift the pages still to read.
func (a *API) runningRuns(ctx context.Context, query string) ([]runRef, error) {
	if a.Temporal == nil {
		return nil, errors.New("no Temporal client")
	}
	dc := converter.GetDefaultDataConverter()
	var out []runRef
	var token []byte
	for {
		resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return out, err
		}
		for _, e := range resp.GetExecutions() {
			ref := runRef{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId()}
			if p := e.GetSearchAttributes().GetIndexedFields()[contract.AttrStep.GetName()]; p != nil {
				_ = dc.FromPayload(p, &ref.Step)
			}
			out = append(out, ref)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// decodeBody reads an optional JSON object body into v, refusing unknown keys.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return badRequest(jsonPath("", err), "the body is not what this endpoint takes: %s", err)
	}
	return nil
}

// decodeAt reads raw into v, refusing unknown keys; a refusal names path (and the key or
// field below it, when the decoder says).
func decodeAt(path string, raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(jsonPath(path, err), "%s", err)
	}
	return nil
}

// jsonPath is where a JSON decoding error is: base, then the field the decoder names.
func jsonPath(base string, err error) string {
	field := ""
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field = te.Field
	} else if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field = strings.Trim(f, `"`)
	}
	switch {
	case field == "":
		return base
	case base == "":
		return field
	}
	return base + "." + field
}

// simulateRequest is POST /v1/journeys/{id}/simulate's body.
type simulateRequest struct {
	Contact json.RawMessage   `json:"contact"`
	Events  []json.RawMessage `json:"events"`
	// Version simulates that version (the newest when 0); Start is the virtual time the
	// contact enters (now when unset).
	Version int        `json:"version"`
	Start   *time.Time `json:"start"`
}

// maxSimulatedEvents bounds a simulation's events.
const maxSimulatedEvents = 1000

// simulate serves POST /v1/journeys/{id}/simulate: the stored journey run for the contact in
// the body, in virtual time, against a scratch CRM; nothing is sent or stored.
func (a *API) simulate(w http.ResponseWriter, r *http.Request) error {
	var body simulateRequest
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if len(body.Events) > maxSimulatedEvents {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Path: "events",
			Message: fmt.Sprintf("has %d events: at most %d are allowed", len(body.Events), maxSimulatedEvents)}
	}
	var contact simulation.Contact
	if len(body.Contact) > 0 {
		if err := decodeAt("contact", body.Contact, &contact); err != nil {
			return err
		}
	}
	events := make([]simulation.Event, len(body.Events))
	var probs []journey.Problem
	for i, raw := range body.Events {
		if err := decodeAt(fmt.Sprintf("events[%d]", i), raw, &events[i]); err != nil {
			return err
		}
		if ev := events[i]; strings.TrimSpace(ev.Name) == "" {
			probs = append(probs, journey.Problem{Path: fmt.Sprintf("events[%d].event", i), Message: "is required"})
		}
		if events[i].At.D < 0 {
			probs = append(probs, journey.Problem{Path: fmt.Sprintf("events[%d].at", i), Message: "must not be negative (it is after the contact enters)"})
		}
	}
	if body.Version < 0 {
		probs = append(probs, journey.Problem{Path: "version", Message: "must be a version number"})
	}
	if len(probs) > 0 {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Path: probs[0].Path, Message: probs[0].String(), Problems: probs}
	}
	id := r.PathValue("id")
	v, err := crm.JourneyByID(r.Context(), a.DB, id, 0)
	if err != nil {
		return err
	}
	if body.Version > 0 && body.Version != v.Version {
		if v, err = crm.JourneyByID(r.Context(), a.DB, id, body.Version); errors.Is(err, crm.ErrNotFound) || err == nil && v.Version != body.Version {
			return &apiError{Status: http.StatusNotFound, Code: "not_found", Path: "version", Message: fmt.Sprintf("journey %q has no version %d", id, body.Version)}
		} else if err != nil {
			return err
		}
	}
	in := simulation.Input{Journey: v.Definition, Version: v.Version, Contact: contact, Events: events}
	if body.Start != nil {
		in.Start = *body.Start
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	res, err := simulation.Run(ctx, a.DB, in)
	var ie *simulation.InputError
	if errors.As(err, &ie) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_simulation", Path: ie.Path, Message: ie.Error()}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// migrateRequest is POST /v1/journeys/{id}/migrate's body.
type migrateRequest struct {
	From    int               `json:"from"`
	To      int               `json:"to"`
	RawMap  map[string]any    `json:"map"`
	Default string            `json:"default"`
	DryRun  bool              `json:"dry_run"`
	Map     map[string]string `json:"-"`
}

// checkMigration checks a migration against the two versions: the map's keys are steps of
// from, its values and the default top-level steps of to. Every problem is reported, with
// its path.
func (a *API) checkMigration(ctx context.Context, id string, m migrateRequest) (from, to *crm.JourneyVersion, err error) {
	var probs []journey.Problem
	version := func(path string, n int) *crm.JourneyVersion {
		if n < 1 {
			probs = append(probs, journey.Problem{Path: path, Message: "is required: a version number"})
			return nil
		}
		v, err := crm.JourneyByID(ctx, a.DB, id, n)
		switch {
		case errors.Is(err, crm.ErrNotFound):
			probs = append(probs, journey.Problem{Path: path, Message: fmt.Sprintf("journey %q has no version %d", id, n)})
			return nil
		case err != nil:
			return nil
		case v.Version != n:
			probs = append(probs, journey.Problem{Path: path, Message: fmt.Sprintf("journey %q has no version %d", id, n)})
			return nil
		}
		return v
	}
	if _, err := crm.JourneyByID(ctx, a.DB, id, 0); err != nil {
		return nil, nil, err
	}
	from, to = version("from", m.From), version("to", m.To)
	if m.From == m.To && m.From > 0 {
		probs = append(probs, journey.Problem{Path: "to", Message: "is the version runs are on already"})
	}
	keys := make([]string, 0, len(m.RawMap))
	for k := range m.RawMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := "map." + k
		if _, ok := m.RawMap[k].(string); !ok {
			probs = append(probs, journey.Problem{Path: path, Message: "must be the id of a step of the new version"})
			continue
		}
		if from != nil && from.Definition.Step(k) == nil {
			probs = append(probs, journey.Problem{Path: path, Message: fmt.Sprintf("%q is not a step of version %d", k, m.From)})
		}
		if to != nil && to.Definition.TopLevel(m.Map[k]) < 0 {
			probs = append(probs, journey.Problem{Path: path, Message: fmt.Sprintf("%q is not a top-level step of version %d (contacts continue at top-level steps)", m.Map[k], m.To)})
		}
	}
	if m.Default != "" && to != nil && to.Definition.TopLevel(m.Default) < 0 {
		probs = append(probs, journey.Problem{Path: "default", Message: fmt.Sprintf("%q is not a top-level step of version %d", m.Default, m.To)})
	}
	if len(probs) > 0 {
		return nil, nil, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_migration", Path: probs[0].Path,
			Message: probs[0].String(), Problems: probs}
	}
	return from, to, nil
}

// MigrationStep is a step of the version runs move from: how many contacts are there now,
// and where they go ("" : they stay).
type MigrationStep struct {
	Step     string `json:"step"`
	Contacts int64  `json:"contacts"`
	To       string `json:"to,omitempty"`
}

// migrate serves POST /v1/journeys/{id}/migrate. A dry run reports the contacts at each step
// of from and the steps the map leaves out; otherwise the migration is recorded and applied in
// the background (202): GET /v1/journeys/{id}/migrations/{migration} follows it.
func (a *API) migrate(w http.ResponseWriter, r *http.Request) error {
	var body migrateRequest
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	body.Map = map[string]string{}
	for k, v := range body.RawMap {
		if s, ok := v.(string); ok {
			body.Map[k] = s
		}
	}
	id := r.PathValue("id")
	from, to, err := a.checkMigration(r.Context(), id, body)
	if err != nil {
		return err
	}
	cm := contract.Migration{From: from.Version, To: to.Version, Journey: to.Definition, Map: body.Map, Default: body.Default}
	if !body.DryRun {
		m, err := crm.CreateMigration(r.Context(), a.DB, crm.Migration{JourneyID: id, From: body.From, To: body.To, Map: body.Map, Default: body.Default})
		if err != nil {
			return err
		}
		cm.ID = m.ID
		a.startMigration(m, cm)
		writeJSON(w, http.StatusAccepted, map[string]any{"migration": m,
			"progress": fmt.Sprintf("/v1/journeys/%s/migrations/%d", id, m.ID)})
		return nil
	}
	steps := from.Definition.StepIDs()
	counts, err := a.countAtSteps(r.Context(), id, from.Version, steps)
	if err != nil {
		return temporalDown(err)
	}
	report := map[string]any{"journey": id, "from": from.Version, "to": to.Version, "dry_run": true}
	var all, unmapped []MigrationStep
	var moving, staying int64
	for _, s := range steps {
		ms := MigrationStep{Step: s, Contacts: counts[s], To: cm.Target(s)}
		all = append(all, ms)
		if ms.To == "" {
			unmapped = append(unmapped, ms)
			staying += ms.Contacts
		} else {
			moving += ms.Contacts
		}
	}
	if unmapped == nil {
		unmapped = []MigrationStep{}
	}
	report["steps"], report["unmapped"], report["moving"], report["staying"] = all, unmapped, moving, staying
	writeJSON(w, http.StatusOK, report)
	return nil
}

// startMigration applies a migration in the background, unless a pass of it is under way in
// this starter already.
func (a *API) startMigration(m *crm.Migration, cm contract.Migration) bool {
	if _, busy := a.migrating.LoadOrStore(m.ID, true); busy {
		return false
	}
	ctx := a.Background
	if ctx == nil {
		ctx = context.Background()
	}
	go func() {
		defer a.migrating.Delete(m.ID)
		a.applyMigration(ctx, m, cm)
	}()
	return true
}

// applyMigration signals every run on the from version to migrate; each run decides from
// where it is (a step the map leaves out stays). Progress is recorded as it goes; a pass
// cut short is resumed by POST …/resume, and runs already moved are no longer listed.
func (a *API) applyMigration(ctx context.Context, m *crm.Migration, cm contract.Migration) {
	record := func(found, signalled, failed int, lastErr string, done bool) {
		if err := crm.MigrationProgress(context.WithoutCancel(ctx), a.DB, m.ID, found, signalled, failed, lastErr, done); err != nil {
			a.Logger.Error("record migration progress", "migration", m.ID, "error", err)
		}
	}
	runs, err := a.runningRuns(ctx, runningQuery(m.JourneyID, m.From, ""))
	if err != nil {
		record(len(runs), 0, 0, "list runs: "+err.Error(), false)
		return
	}
	record(len(runs), 0, 0, "", false)
	var mu sync.Mutex
	signalled, failed, lastErr := 0, 0, ""
	work := make(chan runRef)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range work {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				err := a.Temporal.SignalWorkflow(cctx, run.WorkflowID, run.RunID, contract.SignalMigrate, cm)
				cancel()
				var nf *serviceerror.NotFound
				mu.Lock()
				switch {
				case err == nil:
					signalled++
				case errors.As(err, &nf): // over (or moved) meanwhile
				default:
					failed++
					lastErr = run.WorkflowID + ": " + err.Error()
				}
				if n := signalled + failed; n%100 == 0 {
					record(len(runs), signalled, failed, lastErr, false)
				}
				mu.Unlock()
			}
		}()
	}
	for _, run := range runs {
		if ctx.Err() != nil {
			break
		}
		work <- run
	}
	close(work)
	wg.Wait()
	record(len(runs), signalled, failed, lastErr, ctx.Err() == nil && failed == 0)
}

// migrationOf reads the migration the URL names.
func (a *API) migrationOf(r *http.Request) (*crm.Migration, error) {
	n, err := afterNumber(r.PathValue("migration"))
	if err != nil || n < 1 {
		return nil, badRequest("url path migration", "a migration is named by its number")
	}
	return crm.MigrationByID(r.Context(), a.DB, r.PathValue("id"), n)
}

// getMigration serves GET /v1/journeys/{id}/migrations/{migration}: the migration's record,
// and the runs still on its from version.
func (a *API) getMigration(w http.ResponseWriter, r *http.Request) error {
	m, err := a.migrationOf(r)
	if err != nil {
		return err
	}
	out := map[string]any{"migration": m}
	_, applying := a.migrating.Load(m.ID)
	out["applying"] = applying
	if n, err := a.count(r.Context(), runningQuery(m.JourneyID, m.From, "")); err == nil {
		out["remaining"] = n
	} else {
		out["remaining_note"] = "Temporal did not answer: " + err.Error()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// resumeMigration serves POST /v1/journeys/{id}/migrations/{migration}/resume: another pass
// over the runs still on the from version.
func (a *API) resumeMigration(w http.ResponseWriter, r *http.Request) error {
	m, err := a.migrationOf(r)
	if err != nil {
		return err
	}
	to, err := crm.JourneyByID(r.Context(), a.DB, m.JourneyID, m.To)
	if err != nil {
		return err
	}
	cm := contract.Migration{ID: m.ID, From: m.From, To: m.To, Journey: to.Definition, Map: m.Map, Default: m.Default}
	if !a.startMigration(m, cm) {
		return &apiError{Status: http.StatusConflict, Code: "migration_running", Message: "a pass of this migration is under way"}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"migration": m, "progress": fmt.Sprintf("/v1/journeys/%s/migrations/%d", m.JourneyID, m.ID)})
	return nil
}
