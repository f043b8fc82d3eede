package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/provider"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/worker"
)

// person is a contact's personal data, as sources send it.
type person struct {
	userID, email, phone, first, last, trait string
}

var ada = person{"u-ada", "ada.lovelace@example.com", "+15550104242", "Augusta", "Byron-King", "analytical-engine-7"}

func (p person) values() []string {
	return []string{p.email, p.phone, p.first, p.last, p.trait}
}

func (p person) identify(t *testing.T, s *system) {
	t.Helper()
	status, body := s.call(t, "POST", "/v1/identify", fmt.Sprintf(`{"userId":%q,"traits":{"email":%q,"phone":%q,"first_name":%q,"last_name":%q,"favourite_machine":%q}}`,
		p.userID, p.email, p.phone, p.first, p.last, p.trait), asWriter)
	require.Equal(t, 200, status, body)
}

// fakeSMS is a Twilio-like gateway that refuses the first tries, quoting the number, as real
// gateways do.
func fakeSMS(t *testing.T, refusals int64) (*provider.SMS, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if calls.Add(1) <= refusals {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"code":30003,"message":"Number %s is unreachable"}`, r.Form.Get("To"))
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":"SM%d"}`, calls.Load())
	}))
	t.Cleanup(srv.Close)
	return &provider.SMS{Client: provider.Client{Attempts: 2, Backoff: 10 * time.Millisecond}, BaseURL: srv.URL, AccountID: "AC1", Token: "tok", From: "+15550000000"}, &calls
}

// rawHistory is a run's history as Temporal stores it, read without any codec.
func (s *system) rawHistory(t *testing.T, workflowID, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	iter := s.temporal.GetWorkflowHistory(s.ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

// everyRun lists every run in the namespace.
func (s *system) everyRun(t *testing.T) []*workflowservice.ListWorkflowExecutionsResponse {
	t.Helper()
	resp, err := s.temporal.ListWorkflow(s.ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000})
	require.NoError(t, err)
	return []*workflowservice.ListWorkflowExecutionsResponse{resp}
}

func TestRawHistoriesHoldNoPersonalData(t *testing.T) {
	sms, calls := fakeSMS(t, 2)
	s := setup(t, func(w *worker.Config, _ *starter.Config) { w.SMS = sms })
	s.template(t, "private-hello", "https://shop.example.com/")
	status, body := s.call(t, "PUT", "/v1/fields/plan", `{"type":"text","label":"Plan"}`, asAdmin)
	require.Equal(t, 200, status, body)
	s.apply(t, "private", `
id: private
trigger: {event: Signed Up}
steps:
  - {send_email: {template: private-hello}}
  - {send_sms: "Hi {{field \"first_name\" \"there\"}}, welcome"}
  - {update_fields: {plan: gold}}
  - {id: pause, wait: 1s}
  - {add_tag: welcomed}
`)
	ada.identify(t, s)
	s.track(t, fmt.Sprintf(`{"userId":%q,"event":"Signed Up","properties":{"note":%q},"context":{"traits":{"last_name":%q}}}`, ada.userID, ada.trait, ada.last))
	id := s.contact(t, ada.userID)
	wfID := contract.WorkflowID("private", id)
	require.Eventually(t, func() bool {
		return s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, nil) == nil
	}, 60*time.Second, 100*time.Millisecond, "the run completes (its SMS retried by Temporal)")
	require.GreaterOrEqual(t, calls.Load(), int64(3), "the gateway refused twice, then took the message")
	require.Len(t, s.waitMail(t, 1), 1)

	// Decoded through Cairn's converter, the run did use the contact's data.
	st := s.state(t, wfID)
	require.Equal(t, contract.StatusCompleted, st.Status)

	var failures, encrypted int
	runs := s.everyRun(t)[0].GetExecutions()
	require.NotEmpty(t, runs)
	for _, e := range runs {
		w := e.GetExecution()
		hist := s.rawHistory(t, w.GetWorkflowId(), w.GetRunId())
		desc, err := s.temporal.DescribeWorkflowExecution(s.ctx, w.GetWorkflowId(), w.GetRunId())
		require.NoError(t, err)
		// Everything Temporal keeps about the run: history (payloads, failures, summaries in
		// user metadata), search attributes and memo (visibility), current details and
		// pending activities (describe).
		for what, msg := range map[string]proto.Message{"history": hist, "visibility": e, "describe": desc} {
			raw, err := proto.Marshal(msg)
			require.NoError(t, err)
			js, err := protojson.Marshal(msg)
			require.NoError(t, err)
			for _, v := range append(ada.values(), strings.TrimPrefix(ada.phone, "+")) {
				require.NotContains(t, string(raw), v, "%s of %s", what, w.GetWorkflowId())
				require.NotContains(t, string(js), v, "%s of %s", what, w.GetWorkflowId())
			}
		}
		for _, ev := range hist.GetEvents() {
			if f := ev.GetActivityTaskStartedEventAttributes().GetLastFailure(); f != nil {
				failures++
				require.Equal(t, "Encoded failure", f.GetMessage(), "the message is in the encrypted attributes")
				require.Equal(t, codec.Encoding, string(f.GetEncodedAttributes().GetMetadata()[converter.MetadataEncoding]))
			}
		}
		_ = proxy.VisitPayloads(s.ctx, hist, proxy.VisitPayloadsOptions{SkipSearchAttributes: true, Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			for _, p := range ps {
				require.Equal(t, codec.Encoding, string(p.GetMetadata()[converter.MetadataEncoding]), "every payload is encrypted")
				encrypted++
			}
			return ps, nil
		}})
	}
	require.Equal(t, 1, failures, "the SMS step's failed attempt is in the history, encrypted")
	require.Greater(t, encrypted, 10)
}

func TestErasure(t *testing.T) {
	s := setup(t)
	s.template(t, "erase-hello", "https://shop.example.com/")
	s.apply(t, "hold", `
id: hold
trigger: {event: Signed Up}
steps:
  - {send_email: {template: erase-hello}}
  - {add_tag: vip}
  - {adjust_score: 5}
  - {subscribe: newsletter}
  - {create_task: {title: Call back, assignee: sales}}
  - {add_note: Asked about pricing}
  - {create_deal: {title: Inbound, pipeline: sales, stage: qualified, value: 500}}
  - {id: waiting, wait_until: {condition: {event: Go}, timeout: 1h}}
  - {add_tag: released}
`)
	bob := person{"u-bob", "bob.builder@example.org", "+15550107777", "Robert", "Mason", "steam-roller-3"}
	for _, p := range []person{ada, bob} {
		p.identify(t, s)
		s.track(t, fmt.Sprintf(`{"userId":%q,"event":"Signed Up"}`, p.userID))
		s.track(t, fmt.Sprintf(`{"userId":%q,"event":"Order Completed","properties":{"order_id":"o-%s","total":42,"products":[{"product_id":"p1","name":%q}]}}`, p.userID, p.userID, p.trait))
		s.track(t, fmt.Sprintf(`{"userId":%q,"event":"Product Added","properties":{"product_id":"p2"}}`, p.userID))
	}
	status, body := s.call(t, "POST", "/v1/alias", fmt.Sprintf(`{"userId":%q,"previousId":"ada-anon-1"}`, ada.userID), asWriter)
	require.Equal(t, 200, status, body)
	adaID, bobID := s.contact(t, ada.userID), s.contact(t, bob.userID)
	for _, id := range []int64{adaID, bobID} {
		wf := contract.WorkflowID("hold", id)
		require.Eventually(t, func() bool { return s.state(t, wf).CurrentStep == "waiting" }, 20*time.Second, 50*time.Millisecond)
	}
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`) == 0
	}, 10*time.Second, 20*time.Millisecond)

	// Export: everything Cairn holds about ada.
	status, body = s.call(t, "GET", "/v1/contacts/"+ada.userID+"/export", "", asAdmin)
	require.Equal(t, 200, status, body)
	var export map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(body), &export))
	for _, kind := range []string{"profile", "events", "messages", "deals", "tasks", "notes", "tags", "orders", "journeys", "aliases"} {
		require.Contains(t, export, kind)
		require.NotEqual(t, "[]", string(export[kind]), kind)
	}
	require.Contains(t, string(export["profile"]), ada.email)
	require.Contains(t, string(export["journeys"]), `"step":"waiting"`, "journeys come with their paths")
	require.NotContains(t, body, bob.email)

	// Ada's histories, as Temporal keeps them, before the erasure.
	adaRuns := []string{contract.WorkflowID("hold", adaID), contract.CartWatchID(adaID)}
	hists := map[string]*historypb.History{}
	for _, wf := range adaRuns {
		hists[wf] = s.rawHistory(t, wf, "")
	}

	status, body = s.call(t, "DELETE", "/v1/contacts/"+ada.userID, `{"requestedBy":"ticket-7","reason":"GDPR art. 17 request"}`, asAdmin)
	require.Equal(t, 200, status, body)
	require.Contains(t, body, `"runs_ended":2`)

	// Her runs are over; her histories decode only to the placeholder, for the API's client,
	// for a fresh process, and through the codec server (Temporal UI and the CLI).
	for _, wf := range adaRuns {
		desc, err := s.temporal.DescribeWorkflowExecution(s.ctx, wf, "")
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, desc.GetWorkflowExecutionInfo().GetStatus(), wf)
	}
	var st contract.State
	err := s.temporal.GetWorkflow(s.ctx, adaRuns[0], "").Get(s.ctx, &st)
	require.Error(t, err)
	// A process that never had her key: the start event's input is the placeholder.
	fresh := freshConverter(t, s)
	var input string
	started := s.rawHistory(t, adaRuns[0], "").Events[0].GetWorkflowExecutionStartedEventAttributes()
	require.NoError(t, fresh.FromPayload(started.GetInput().GetPayloads()[0], &input))
	require.Equal(t, "(erased)", input)
	var payloads []*commonpb.Payload
	for _, h := range hists {
		_ = proxy.VisitPayloads(s.ctx, h, proxy.VisitPayloadsOptions{SkipSearchAttributes: true, Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			payloads = append(payloads, ps...)
			return ps, nil
		}})
	}
	require.Greater(t, len(payloads), 10)
	out, err := json.Marshal(map[string]any{"payloads": payloads})
	require.NoError(t, err)
	req, _ := http.NewRequest("POST", s.url+"/codec/decode", strings.NewReader(string(out)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Authorization", "Bearer "+codecToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var decoded commonpb.Payloads
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(raw))
	require.NoError(t, protojson.Unmarshal(raw, &decoded))
	require.Len(t, decoded.Payloads, len(payloads))
	for _, p := range decoded.Payloads {
		require.Equal(t, string(codec.Erased), string(p.Data))
	}

	// PostgreSQL holds nothing of hers, in any table; bob is untouched.
	tables := s.tables(t)
	require.Contains(t, tables, "data_keys")
	for _, table := range tables {
		for _, v := range append(ada.values(), ada.userID, "ada-anon-1") {
			require.Zero(t, s.count(t, `SELECT count(*) FROM `+table+` x WHERE x::text ILIKE '%' || $1 || '%'`, v), "%s holds %q", table, v)
		}
	}
	for _, v := range append(bob.values(), bob.userID) {
		require.NotZero(t, s.count(t, `SELECT count(*) FROM contacts x WHERE x::text ILIKE '%' || $1 || '%'`, v), v)
	}
	status, _ = s.call(t, "GET", "/v1/contacts/"+ada.userID, "", asAdmin)
	require.Equal(t, 404, status)
	var who string
	var erasedContact int64
	require.NoError(t, s.db.QueryRow(s.ctx, `SELECT requested_by, contact_id FROM erasures`).Scan(&who, &erasedContact))
	require.Equal(t, "ticket-7", who)
	require.Equal(t, adaID, erasedContact)

	// Bob's run goes on.
	s.track(t, fmt.Sprintf(`{"userId":%q,"event":"Go"}`, bob.userID))
	bobRun := contract.WorkflowID("hold", bobID)
	require.Eventually(t, func() bool { return s.temporal.GetWorkflow(s.ctx, bobRun, "").Get(s.ctx, &st) == nil }, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag = 'released'`, bobID))

	// A later event for her user id is a new contact, with a new key.
	ada.identify(t, s)
	s.track(t, fmt.Sprintf(`{"userId":%q,"event":"Signed Up"}`, ada.userID))
	again := s.contact(t, ada.userID)
	require.NotEqual(t, adaID, again)
	require.Eventually(t, func() bool {
		v, err := s.temporal.QueryWorkflow(s.ctx, contract.WorkflowID("hold", again), "", contract.QueryState)
		return err == nil && v.Get(&st) == nil && st.CurrentStep == "waiting"
	}, 20*time.Second, 50*time.Millisecond)
	k, err := crm.ContactDataKey(s.ctx, s.db, adaID)
	require.NoError(t, err)
	require.NotNil(t, k.DestroyedAt)
	require.Nil(t, k.Wrapped)
}

// tables lists the tables of the test's schema.
func (s *system) tables(t *testing.T) []string {
	t.Helper()
	rows, err := s.db.Query(s.ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}

// freshConverter is Cairn's data converter in a new process: a codec with nothing cached.
func freshConverter(t *testing.T, s *system) converter.DataConverter {
	t.Helper()
	cd, err := testCodec.Build(s.db, quiet())
	require.NoError(t, err)
	return cluster.DataConverter(cd)
}
