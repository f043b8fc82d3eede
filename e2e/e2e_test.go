// Package e2e_test runs Cairn end to end: the embedded Temporal server, a real PostgreSQL,
// the real worker and the starter's real HTTP server.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cairnhq/cairn/cli"
	"github.com/cairnhq/cairn/clock"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/dev/embedded"
	"github.com/cairnhq/cairn/dev/mailcatcher"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/worker"
)

func TestMain(m *testing.M) { pgtest.Main(logScan{m}) }

// missing skips a test whose tool (or, for the root-only dev test, whose user) this machine
// lacks, saying which and how to get it; with
// CAIRN_E2E_STRICT set (.ci/run sets it, having installed every tool), it fails instead, so
// CI never passes a test it did not run.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CAIRN_E2E_STRICT") != "" {
		t.Fatal(what + " (CAIRN_E2E_STRICT is set: CI installs it, so this run must not skip)")
	}
	t.Skip(what)
}

// testCodec is the codec of the tests' workers, starters and clients; codecToken opens the
// starter's codec server.
var testCodec = func() codec.Config {
	ring, err := codec.ParseKeyRing(codec.NewKeyEntry("e2e-1"))
	if err != nil {
		panic(err)
	}
	return codec.Config{Ring: ring}
}()

const codecToken = "ct_e2e"

// dial connects to Temporal as Cairn does, with the codec cfg over the CRM at dbURL: the
// tests read and write Cairn's runs' payloads as the worker and starter do.
func dial(t testing.TB, address, dbURL string, cfg codec.Config) client.Client {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	cd, err := cfg.Build(pool, quiet())
	require.NoError(t, err)
	cl, err := cluster.Dial(context.Background(), cluster.Config{Address: address, Namespace: "default", Codec: cd}, quiet())
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

const (
	writeKey = "wk_e2e"
	adminKey = "ak_e2e"
)

type system struct {
	ctx      context.Context
	url      string // starter base URL
	temporal client.Client
	db       *pgxpool.Pool
	mail     *mailcatcher.Catcher
	// clock is the starter's: tests move it past re-entry windows instead of sleeping.
	clock *clock.Offset
	// grpc is Temporal's address, dbURL the CRM's.
	grpc, dbURL string
}

const trackingKey = "tk_e2e"

// quiet is the logger of the in-process components: JSON lines at info, built as the cairn
// command builds them, into a file that logScan reads once the tests are done
// (CAIRN_TEST_LOG=1 shows them on stderr at debug instead).
func quiet() *slog.Logger {
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		l, _ := cli.NewLogger(os.Stderr, "json", "debug")
		return l
	}
	l, _ := cli.NewLogger(testLog(), "json", "info")
	return l
}

// setup starts Temporal (in memory), a worker and a starter on a fresh PostgreSQL schema;
// opts change their configurations first.
func setup(t *testing.T, opts ...func(*worker.Config, *starter.Config)) *system {
	t.Helper()
	dbURL := pgtest.URL(t)
	srv, err := embedded.Start(embedded.Options{Namespace: "default", SearchAttributes: contract.SearchAttributes, UIPort: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	tc := cluster.Config{Address: srv.GRPCAddress(), Namespace: "default"}
	catcher, err := mailcatcher.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { catcher.Close() })
	smtpHost, smtpPort, _ := net.SplitHostPort(catcher.Addr())
	port, _ := strconv.Atoi(smtpPort)
	// The starter listens on a port chosen now, so the worker can sign links pointing at it.
	httpAddr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())

	ctx, cancel := context.WithCancel(context.Background())
	clk := &clock.Offset{}
	done := make(chan error, 2)
	workerReady := make(chan struct{})
	starterReady := make(chan string, 1)
	wcfg := worker.Config{Temporal: tc, DatabaseURL: dbURL, Codec: testCodec, Logger: quiet(), Ready: workerReady,
		SMTP:      &email.SMTPConfig{Host: smtpHost, Port: port, TLS: "none", From: "Cairn e2e <e2e@example.com>"},
		PublicURL: "http://" + httpAddr, TrackingKey: trackingKey}
	scfg := starter.Config{Temporal: tc, DatabaseURL: dbURL, HTTPAddr: httpAddr, Codec: testCodec,
		CodecServer: codec.ServerConfig{Tokens: []string{codecToken}, Origins: []string{"http://temporal-ui.test"}},
		WriteKeys:   []string{writeKey}, AdminKey: adminKey, TrackingKey: trackingKey, CartIdle: 2 * time.Second,
		Logger: quiet(), Ready: starterReady, Clock: clk, DispatchMaxAttempts: 3, TemporalUI: "http://temporal-ui.test"}
	for _, o := range opts {
		o(&wcfg, &scfg)
	}
	go func() { done <- worker.Run(ctx, wcfg) }()
	go func() { done <- starter.Run(ctx, scfg) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, <-done)
	})
	var addr string
	for addr == "" || workerReady != nil {
		select {
		case err := <-done:
			t.Fatalf("a component stopped during start: %v", err)
		case addr = <-starterReady:
		case <-workerReady:
			workerReady = nil
		case <-time.After(30 * time.Second):
			t.Fatal("worker and starter not ready after 30s")
		}
	}
	cl := dial(t, srv.GRPCAddress(), dbURL, testCodec)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &system{ctx: context.Background(), url: "http://" + addr, temporal: cl, db: pool, mail: catcher, clock: clk, grpc: srv.GRPCAddress(), dbURL: dbURL}
}

// template saves a simple email template whose HTML links to link.
func (s *system) template(t *testing.T, id, link string) {
	t.Helper()
	doc := fmt.Sprintf(`{"subject": "About %s, {{field \"first_name\" \"friend\"}}", "text": "See %s",
		"html": "<html><body><p>Hi</p><a href=\"%s\">go</a></body></html>"}`, id, link, link)
	status, body := s.call(t, "PUT", "/v1/templates/"+id, doc, asAdmin)
	require.Contains(t, []int{200, 201}, status, body)
}

func (s *system) call(t *testing.T, method, path, body string, auth func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	auth(req)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func asWriter(r *http.Request) { r.SetBasicAuth(writeKey, "") }
func asAdmin(r *http.Request)  { r.Header.Set("Authorization", "Bearer "+adminKey) }

func (s *system) apply(t *testing.T, id, doc string) {
	t.Helper()
	status, body := s.call(t, "PUT", "/v1/journeys/"+id, doc, asAdmin)
	require.Equal(t, 201, status, body)
}

func (s *system) track(t *testing.T, body string) {
	t.Helper()
	status, reply := s.call(t, "POST", "/v1/track", body, asWriter)
	require.Equal(t, 200, status, reply)
}

// find waits for the visibility store to list exactly one run matching query.
func (s *system) find(t *testing.T, query string) *workflowservice.ListWorkflowExecutionsResponse {
	t.Helper()
	var resp *workflowservice.ListWorkflowExecutionsResponse
	require.Eventually(t, func() bool {
		var err error
		resp, err = s.temporal.ListWorkflow(s.ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		return err == nil && len(resp.Executions) == 1
	}, 20*time.Second, 100*time.Millisecond, "no run for %s", query)
	return resp
}

func (s *system) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.db.QueryRow(s.ctx, sql, args...).Scan(&n))
	return n
}

func TestTrackedEventRunsTheJourneyVisibleInTemporalWithEachEffectOnce(t *testing.T) {
	s := setup(t)
	s.template(t, "welcome", "https://example.com/start")
	s.template(t, "getting-started", "https://example.com/guide")
	s.apply(t, "e2e-welcome", `
id: e2e-welcome
trigger: {event: Signed Up}
steps:
  - {add_tag: new-user}
  - {id: hello, send_email: {template: welcome}}
  - {id: pause, wait: 2s}
  - {send_email: {template: getting-started}}
`)
	s.track(t, `{"userId":"ada","event":"Signed Up","messageId":"m-1","context":{"traits":{"email":"ada@example.com"}}}`)
	// A second delivery of the same message starts nothing new.
	s.track(t, `{"userId":"ada","event":"Signed Up","messageId":"m-1","context":{"traits":{"email":"ada@example.com"}}}`)

	var contactID int64
	require.NoError(t, s.db.QueryRow(s.ctx, `SELECT id FROM contacts WHERE external_id = 'ada'`).Scan(&contactID))
	wfID := contract.WorkflowID("e2e-welcome", contactID)

	list := s.find(t, "CairnJourney='e2e-welcome'")
	exec := list.Executions[0]
	require.Equal(t, wfID, exec.Execution.WorkflowId)
	require.Equal(t, contract.WorkflowType, exec.Type.Name)
	attrs := decodeAttrs(t, exec.SearchAttributes.GetIndexedFields())
	require.Equal(t, "e2e-welcome", attrs["CairnJourney"])
	require.Equal(t, "ada", attrs["CairnContact"], "the contact's own id, not Cairn's number")
	require.Equal(t, []any{"ada"}, attrs["CairnContactIDs"])
	require.Equal(t, float64(1), attrs["CairnJourneyVersion"])
	require.NotEmpty(t, attrs["CairnStep"])
	s.find(t, "CairnContact='ada' AND CairnJourneyVersion=1")
	s.find(t, "CairnContactIDs='ada'")

	// While the contact waits, the state query and CairnStep say so.
	require.Eventually(t, func() bool {
		v, err := s.temporal.QueryWorkflow(s.ctx, wfID, "", contract.QueryState)
		if err != nil {
			return false
		}
		var st contract.State
		return v.Get(&st) == nil && st.CurrentStep == "pause" && st.Status == contract.StatusWaiting
	}, 10*time.Second, 50*time.Millisecond)
	s.find(t, fmt.Sprintf("WorkflowId='%s' AND CairnStep='pause'", wfID))

	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Len(t, st.Path, 4)
	require.Len(t, st.Events, 1, "the duplicate delivery reached no run")
	// Over, the run keeps the step it was last at; its status says it completed.
	s.find(t, fmt.Sprintf("WorkflowId='%s' AND CairnStep='4-send_email' AND ExecutionStatus='Completed'", wfID))

	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag = 'new-user'`, contactID))
	require.Equal(t, 2, s.count(t, `SELECT count(*) FROM email_messages WHERE contact_id = $1 AND to_address = 'ada@example.com' AND status = 'sent'`, contactID))
	require.Len(t, s.mail.Messages(), 2, "two emails over SMTP, each once")
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE name = 'Signed Up'`))

	recordHistory(t, s, wfID, "welcome-event-path")
}

func TestTagAddedByOneJourneyTriggersAnother(t *testing.T) {
	s := setup(t)
	s.apply(t, "tagger", "id: tagger\ntrigger: {event: Order Completed}\nsteps: [{add_tag: customer}]")
	s.apply(t, "on-tag", "id: on-tag\ntrigger: {tag_added: customer}\nsteps: [{add_tag: greeted}]")
	s.track(t, `{"userId":"bo","event":"Order Completed"}`)

	var contactID int64
	require.NoError(t, s.db.QueryRow(s.ctx, `SELECT id FROM contacts WHERE external_id = 'bo'`).Scan(&contactID))
	// on-tag fires on "customer", not on its own "greeted".
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag = 'greeted'`, contactID) == 1
	}, 20*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`) == 0
	}, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, 2, s.count(t, `SELECT count(*) FROM events WHERE name = 'tag_added' AND contact_id = $1`, contactID),
		"customer and greeted, each once")
	s.find(t, "CairnJourney='on-tag' AND CairnContact='bo'")
}

func decodeAttrs(t *testing.T, fields map[string]*commonpb.Payload) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, p := range fields {
		var v any
		require.NoError(t, json.Unmarshal(p.GetData(), &v))
		out[k] = v
	}
	return out
}

// recordHistory writes the run's history for the replay tests when CAIRN_RECORD_HISTORY is
// set (go test ./e2e -run ... with CAIRN_RECORD_HISTORY=1), named for the run's revision.
func recordHistory(t *testing.T, s *system, wfID, name string) {
	recordRunHistory(t, s, wfID, "", name)
}

// recordRunHistory records one run of a chain (runID "": the latest).
func recordRunHistory(t *testing.T, s *system, wfID, runID, name string) {
	if os.Getenv("CAIRN_RECORD_HISTORY") == "" {
		return
	}
	iter := s.temporal.GetWorkflowHistory(s.ctx, wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	// Recorded histories hold decoded payloads: the replay tests have no data keys, and
	// replaying plain payloads through the codec is itself what they check.
	cd, err := testCodec.Build(s.db, quiet())
	require.NoError(t, err)
	require.NoError(t, proxy.VisitPayloads(s.ctx, hist, proxy.VisitPayloadsOptions{SkipSearchAttributes: true,
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return cd.Decode(ps)
		}}))
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	// Histories recorded from revision 1 on say so in their name, so that recording again
	// never replaces a history of an older revision, which must go on replaying too.
	if contract.Revision > 0 {
		name = fmt.Sprintf("%s-revision%d", name, contract.Revision)
	}
	path := filepath.Join("..", "workflows", "testdata", name+".json")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, b, 0o644))
	t.Logf("recorded %d events to %s", len(hist.Events), path)
}

func TestWorkerRefusesANamespaceWithoutCairnsSearchAttributes(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Namespace: "default", UIPort: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = worker.Run(ctx, worker.Config{
		Temporal:    cluster.Config{Address: srv.GRPCAddress(), Namespace: "default"},
		DatabaseURL: pgtest.URL(t), Codec: testCodec, Logger: quiet(),
	})
	require.Error(t, err)
	for _, name := range []string{"CairnJourney", "CairnContact", "CairnStep", "CairnJourneyVersion", "CairnContactIDs"} {
		require.Contains(t, err.Error(), name)
	}
	require.Contains(t, err.Error(), "temporal operator search-attribute create --namespace default --name CairnJourneyVersion --type Int")
	require.Contains(t, err.Error(), "temporal operator search-attribute create --namespace default --name CairnContactIDs --type KeywordList")
}

func (s *system) contact(t *testing.T, ext string) int64 {
	t.Helper()
	var id int64
	require.Eventually(t, func() bool {
		return s.db.QueryRow(s.ctx, `SELECT id FROM contacts WHERE external_id = $1`, ext).Scan(&id) == nil
	}, 10*time.Second, 20*time.Millisecond)
	return id
}

func (s *system) state(t *testing.T, wfID string) contract.State {
	t.Helper()
	var st contract.State
	require.Eventually(t, func() bool {
		v, err := s.temporal.QueryWorkflow(s.ctx, wfID, "", contract.QueryState)
		return err == nil && v.Get(&st) == nil
	}, 10*time.Second, 50*time.Millisecond)
	return st
}

func TestEventsReachRunningJourneysWaitingOnThemAndExitTakesContactsOut(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-trial", `
id: e2e-trial
trigger: {event: Trial Started}
exit: {event: Unsubscribed}
steps:
  - id: activated?
    wait_until: {condition: {event: Feature Used, where: {feature: reports}, since_entry: true}, timeout: 1h}
    then: [{add_tag: activated}]
    else: [{add_tag: stalled}]
`)
	s.track(t, `{"userId":"dee","event":"Trial Started"}`)
	s.track(t, `{"userId":"eve","event":"Trial Started"}`)
	dee, eve := contract.WorkflowID("e2e-trial", s.contact(t, "dee")), contract.WorkflowID("e2e-trial", s.contact(t, "eve"))
	for _, id := range []string{dee, eve} {
		require.Eventually(t, func() bool {
			st := s.state(t, id)
			return st.CurrentStep == "activated?" && st.Status == contract.StatusWaiting
		}, 10*time.Second, 50*time.Millisecond)
	}

	// Not the feature it waits for: dee keeps waiting.
	s.track(t, `{"userId":"dee","event":"Feature Used","properties":{"feature":"billing"}}`)
	require.Eventually(t, func() bool { return len(s.state(t, dee).Events) == 2 }, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, contract.StatusWaiting, s.state(t, dee).Status)

	s.track(t, `{"userId":"dee","event":"Feature Used","properties":{"feature":"reports"}}`)
	s.track(t, `{"userId":"eve","event":"Unsubscribed"}`)

	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, dee, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'activated'`))

	require.NoError(t, s.temporal.GetWorkflow(s.ctx, eve, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusExited, st.Status)
	s.find(t, fmt.Sprintf("WorkflowId='%s' AND ExecutionStatus='Completed'", eve))
	require.Zero(t, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag IN ('stalled', 'activated') AND contact_id = (SELECT id FROM contacts WHERE external_id = 'eve')`))

	// The finished run's enrollment is closed, and a later event for it dispatches cleanly.
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM enrollments WHERE ended_at IS NULL AND contact_id = (SELECT id FROM contacts WHERE external_id = 'dee')`) == 0
	}, 10*time.Second, 50*time.Millisecond)
	s.track(t, `{"userId":"dee","event":"Feature Used","properties":{"feature":"reports"}}`)
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`) == 0
	}, 10*time.Second, 50*time.Millisecond)
}

func TestPurchaseGoalJumpsAContactOutOfAWaitToTheThankYouStep(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-cart", `
id: e2e-cart
trigger: {event: Cart Abandoned}
goals:
  - {id: purchased, when: {event: Order Completed, since_entry: true}, then: thank-you}
steps:
  - {id: reminder-1, add_tag: cart-reminded}
  - {id: pause, wait: 1h}
  - branch:
      - when: {tag: vip}
        steps: [{add_tag: vip-reminder}]
      - else: [{add_tag: plain-reminder}]
  - split:
      - {percent: 50, steps: [{add_tag: variant-a}]}
      - {percent: 50, steps: [{add_tag: variant-b}]}
  - {id: thank-you, add_tag: thanked}
`)
	s.track(t, `{"userId":"fay","event":"Cart Abandoned"}`)
	wfID := contract.WorkflowID("e2e-cart", s.contact(t, "fay"))
	require.Eventually(t, func() bool { return s.state(t, wfID).CurrentStep == "pause" }, 10*time.Second, 50*time.Millisecond)

	s.track(t, `{"userId":"fay","event":"Order Completed","properties":{"total":42}}`)
	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, &st))
	require.Equal(t, []string{"purchased"}, st.GoalsMet)
	var tags []string
	rows, err := s.db.Query(s.ctx, `SELECT tag FROM contact_tags ORDER BY tag`)
	require.NoError(t, err)
	for rows.Next() {
		var tag string
		require.NoError(t, rows.Scan(&tag))
		tags = append(tags, tag)
	}
	require.Equal(t, []string{"cart-reminded", "thanked"}, tags, "the hour's wait and the reminders after it were skipped")
	// The CRM knows: the goal is recorded, the run's end too, and the enrollment is closed.
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM goal_completions WHERE journey_id = 'e2e-cart' AND goal_id = 'purchased'`))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE name = 'goal_met'`))
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM events WHERE name = 'journey_completed' AND properties->>'journey' = 'e2e-cart'`) == 1
	}, 5*time.Second, 50*time.Millisecond)
	require.Zero(t, s.count(t, `SELECT count(*) FROM enrollments WHERE journey_id = 'e2e-cart' AND ended_at IS NULL`))
	recordHistory(t, s, wfID, "cart-goal-event-path")
}

func TestBranchAndSplitRunAgainstTheRealCRM(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-paths", `
id: e2e-paths
trigger: {event: Signed Up}
steps:
  - id: opened?
    wait_until: {condition: {event: Email Opened}, timeout: 2s}
    then: [{add_tag: opener}]
    else: [{add_tag: no-open}]
  - branch:
      - when: {field: plan, equals: pro}
        steps: [{add_tag: pro-path}]
      - when: {tag: no-open}
        steps: [{add_tag: nudge}]
      - else: [{add_tag: default}]
  - split:
      - {percent: 50, steps: [{add_tag: a}]}
      - {percent: 50, steps: [{add_tag: b}]}
`)
	s.track(t, `{"userId":"gus","event":"Signed Up","context":{"traits":{"plan":"free"}}}`)
	wfID := contract.WorkflowID("e2e-paths", s.contact(t, "gus"))
	s.finished(t, wfID)
	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'no-open'`))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'nudge'`))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag IN ('a', 'b')`))
	recordHistory(t, s, wfID, "paths-event-path")
}

func (s *system) runs(t *testing.T, journeyID string, contactID int64) int {
	t.Helper()
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`) == 0
	}, 10*time.Second, 20*time.Millisecond)
	var ext string
	require.NoError(t, s.db.QueryRow(s.ctx, `SELECT external_id FROM contacts WHERE id = $1`, contactID).Scan(&ext))
	resp, err := s.temporal.ListWorkflow(s.ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("CairnJourney='%s' AND CairnContact='%s'", journeyID, ext)})
	require.NoError(t, err)
	return len(resp.Executions)
}

// finished waits for the run to exist and complete.
func (s *system) finished(t *testing.T, wfID string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, nil) == nil
	}, 20*time.Second, 50*time.Millisecond, "run %s did not complete", wfID)
}

func TestReentryOnceAndEntryConditionDecideWhoStarts(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-once", `
id: e2e-once
trigger: {event: Ping}
reentry: {mode: once}
entry: {not: {field: plan, equals: blocked}}
steps: [{add_tag: pinged}]
`)
	s.track(t, `{"userId":"hal","event":"Ping"}`)
	hal := s.contact(t, "hal")
	s.finished(t, contract.WorkflowID("e2e-once", hal))
	s.track(t, `{"userId":"hal","event":"Ping"}`)
	require.Equal(t, 1, s.runs(t, "e2e-once", hal), "once means once, even after the run ended")

	s.track(t, `{"userId":"ivy","event":"Ping","context":{"traits":{"plan":"blocked"}}}`)
	require.Zero(t, s.runs(t, "e2e-once", s.contact(t, "ivy")), "the entry condition keeps ivy out")
}

func TestReentryAfterAWaitLetsAContactBackOnlyOnceItHasPassed(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-after", `
id: e2e-after
trigger: {event: Ping}
reentry: {mode: after, wait: 30d}
steps: [{add_tag: pinged}]
`)
	s.track(t, `{"userId":"jo","event":"Ping"}`)
	jo := s.contact(t, "jo")
	s.finished(t, contract.WorkflowID("e2e-after", jo))
	s.track(t, `{"userId":"jo","event":"Ping"}`)
	require.Equal(t, 1, s.runs(t, "e2e-after", jo), "too soon")
	s.clock.Advance(31 * 24 * time.Hour) // the starter's clock: nobody waits a month
	s.track(t, `{"userId":"jo","event":"Ping"}`)
	require.Eventually(t, func() bool { return s.runs(t, "e2e-after", jo) == 2 }, 10*time.Second, 100*time.Millisecond)
}

func TestScoreCrossingStartsTheSalesJourneyThatCreatesADealATaskAndStartsAnother(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-nurture", `
id: e2e-nurture
trigger: {event: Whitepaper Downloaded}
steps:
  - {adjust_score: 30}
  - {update_fields: {lifecycle: mql}}
`)
	s.apply(t, "e2e-hot-lead", `
id: e2e-hot-lead
trigger: {score_above: 50}
steps:
  - {create_deal: {title: Inbound, pipeline: sales, stage: qualified, value: 5000, owner: ana}}
  - {create_task: {title: Call the lead, assignee: ana, due_in: 1d}}
  - {start_journey: e2e-handoff}
`)
	s.apply(t, "e2e-handoff", `
id: e2e-handoff
trigger: {manual: true}
steps:
  - {move_deal: {pipeline: sales, stage: contacted}}
  - {add_note: Handed to sales}
`)
	s.track(t, `{"userId":"kim","event":"Whitepaper Downloaded","messageId":"w1"}`)
	kim := s.contact(t, "kim")
	s.finished(t, contract.WorkflowID("e2e-nurture", kim))
	require.Zero(t, s.runs(t, "e2e-hot-lead", kim), "30 points do not cross 50")
	s.track(t, `{"userId":"kim","event":"Whitepaper Downloaded","messageId":"w2"}`)

	s.finished(t, contract.WorkflowID("e2e-handoff", kim))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM deals WHERE contact_id = $1 AND stage = 'contacted' AND value = 5000`, kim))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM tasks WHERE contact_id = $1 AND assignee = 'ana'`, kim))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM notes WHERE contact_id = $1`, kim))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contacts WHERE id = $1 AND (scores ->> '')::numeric = 60`, kim))
	require.Equal(t, 1, s.runs(t, "e2e-hot-lead", kim))
}

func TestPausedJourneyTakesNoNewEntriesAndTheAPICanStartOne(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-pause", "id: e2e-pause\ntrigger: {event: Ping}\nsteps: [{add_tag: pinged}]")
	status, body := s.call(t, "POST", "/v1/journeys/e2e-pause/pause", "", asAdmin)
	require.Equal(t, 200, status, body)
	require.Contains(t, body, `"paused":true`)
	s.track(t, `{"userId":"max","event":"Ping"}`)
	mx := s.contact(t, "max")
	require.Zero(t, s.runs(t, "e2e-pause", mx))

	status, body = s.call(t, "POST", "/v1/journeys/e2e-pause/resume", "", asAdmin)
	require.Equal(t, 200, status, body)
	status, body = s.call(t, "POST", "/v1/journeys/e2e-pause/start", `{"userId":"max"}`, asAdmin)
	require.Equal(t, 202, status, body)
	s.finished(t, contract.WorkflowID("e2e-pause", mx))

	status, body = s.call(t, "POST", "/v1/journeys/nope/start", `{"userId":"max"}`, asAdmin)
	require.Equal(t, 404, status, body)
	status, _ = s.call(t, "POST", "/v1/journeys/e2e-pause/start", `{"userId":"max"}`, asWriter)
	require.Equal(t, 401, status)
}

func TestCairnDetectsAnAbandonedCartAndStartsTheRecoveryJourney(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-recover", "id: e2e-recover\ntrigger: {cart_abandoned: true}\nsteps: [{add_tag: cart-recovery}]")
	s.track(t, `{"userId":"ola","event":"Product Added","properties":{"cart_id":"c-9","sku":"SKU-1"}}`)
	s.track(t, `{"userId":"pat","event":"Product Added","properties":{"cart_id":"c-10"}}`)
	s.track(t, `{"userId":"pat","event":"Order Completed","properties":{"order_id":"o-1"}}`)
	ola, pat := s.contact(t, "ola"), s.contact(t, "pat")
	s.finished(t, contract.WorkflowID("e2e-recover", ola))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE name = 'cart_abandoned' AND contact_id = $1 AND properties->>'cart_id' = 'c-9'`, ola))
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, contract.CartWatchID(pat), "").Get(s.ctx, nil))
	require.Zero(t, s.count(t, `SELECT count(*) FROM events WHERE name = 'cart_abandoned' AND contact_id = $1`, pat), "an order ends the watch")
}

func TestBirthdayJourneyStartsFromTheHourlyDateSchedule(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-bday", "id: e2e-bday\ntrigger: {date_field: birthday, anniversary: true}\nsteps: [{add_tag: birthday-greeted}]")
	today := time.Now().UTC()
	s.track(t, fmt.Sprintf(`{"userId":"quin","event":"Signed Up","context":{"traits":{"birthday":"%d-%s"}}}`, today.Year()-30, today.Format("01-02")))
	quin := s.contact(t, "quin")
	h := s.temporal.ScheduleClient().GetHandle(s.ctx, contract.DateScheduleID)
	desc, err := h.Describe(s.ctx)
	require.NoError(t, err, "the worker created the schedule")
	require.NotNil(t, desc)
	// The schedule names each run after the second it starts, so a trigger in the same second
	// as the run the worker's schedule made at creation is dropped: trigger until one counts.
	require.Eventually(t, func() bool {
		_ = h.Trigger(s.ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL})
		time.Sleep(1500 * time.Millisecond)
		return s.count(t, `SELECT count(*) FROM events WHERE name = 'date_reached' AND contact_id = $1`, quin) > 0
	}, 30*time.Second, 100*time.Millisecond)
	s.finished(t, contract.WorkflowID("e2e-bday", quin))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'birthday-greeted'`))
}

func TestEnteringASegmentStartsItsJourneyOnce(t *testing.T) {
	s := setup(t)
	status, body := s.call(t, "PUT", "/v1/segments/repeat-buyers", `{"name": "Repeat buyers", "condition": {"event": "Order Completed", "at_least": 2}}`, asAdmin)
	require.Equal(t, 201, status, body)
	s.apply(t, "e2e-repeat", "id: e2e-repeat\ntrigger: {segment_entered: repeat-buyers}\nsteps: [{add_tag: loyal}]")
	s.track(t, `{"userId":"rey","event":"Order Completed","messageId":"o1"}`)
	rey := s.contact(t, "rey")
	require.Zero(t, s.runs(t, "e2e-repeat", rey), "one order is not a repeat")
	s.track(t, `{"userId":"rey","event":"Order Completed","messageId":"o2"}`)
	s.finished(t, contract.WorkflowID("e2e-repeat", rey))
	s.track(t, `{"userId":"rey","event":"Order Completed","messageId":"o3"}`)
	require.Equal(t, 1, s.runs(t, "e2e-repeat", rey), "still in the segment: no new entry")
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE name = 'segment_entered' AND contact_id = $1`, rey))
}
