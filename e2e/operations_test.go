package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/worker"
)

// countRuns counts runs in Temporal's visibility.
func (s *system) countRuns(t *testing.T, query string) int64 {
	t.Helper()
	resp, err := s.temporal.CountWorkflow(s.ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	require.NoError(t, err)
	return resp.GetCount()
}

// eventuallyCount waits for visibility to count want runs.
func (s *system) eventuallyCount(t *testing.T, query string, want int64, within time.Duration) {
	t.Helper()
	var got int64
	require.Eventually(t, func() bool { got = s.countRuns(t, query); return got == want }, within, 200*time.Millisecond,
		"%s: %d runs, not %d", query, got, want)
}

// batch sends Segment messages in batches of 100.
func (s *system) batch(t *testing.T, msgs []string) {
	t.Helper()
	for len(msgs) > 0 {
		n := min(100, len(msgs))
		status, body := s.call(t, "POST", "/v1/batch", `{"batch":[`+strings.Join(msgs[:n], ",")+`]}`, asWriter)
		require.Equal(t, 200, status, body)
		msgs = msgs[n:]
	}
}

func (s *system) callJSON(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	status, reply := s.call(t, method, path, body, asAdmin)
	require.Equal(t, want, status, reply)
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(reply), &out))
	return out
}

// migrationV1's waits last %[1]ds: long enough for 500 contacts to reach them and be
// migrated before they end, on a busy machine too (the test measures it first).
const migrationV1 = `
id: e2e-mig
trigger: {event: Joined}
steps:
  - {id: hello, send_email: {template: mig-hello}}
  - branch:
      - when: {field: group, equals: a}
        steps: [{id: wait-a, wait: %[1]ds}]
      - when: {field: group, equals: b}
        steps: [{id: wait-b, wait_until: {condition: {event: Clicked}, timeout: %[1]ds}}]
      - else: [{id: wait-c, wait: %[1]ds}]
  - {id: old-email, send_email: {template: mig-old}}
  - {id: bye, send_email: {template: mig-bye}}
`

// Version 2 renames the waits (and lifts them to the top level), inserts a step, and
// removes the old email.
const migrationV2 = `
id: e2e-mig
trigger: {event: Joined}
steps:
  - {id: hello, send_email: {template: mig-hello}}
  - {id: pause-a, wait: 30s}
  - {id: inserted, add_tag: migrated}
  - {id: pause-b, wait_until: {condition: {event: Clicked}, timeout: 1s}}
  - {id: pause-c, wait: 1s}
  - {id: bye, send_email: {template: mig-bye}}
`

// TestMigratingRunsInFlight moves 500 runs spread over three waits of version 1 to version 2:
// the dry run counts them exactly; applied, every run continues on version 2 at its mapped
// step with its wait's deadline, nothing is sent twice, and the runs complete on version 2's
// path.
func TestMigratingRunsInFlight(t *testing.T) {
	s := setup(t)
	for _, tpl := range []string{"mig-hello", "mig-old", "mig-bye"} {
		s.template(t, tpl, "https://example.com/"+tpl)
	}
	// How long 100 contacts take to reach a wait on this machine now, to size the waits.
	s.apply(t, "e2e-warm", "id: e2e-warm\ntrigger: {event: Warm}\nsteps: [{send_email: {template: mig-hello}}, {id: w, wait: 1h}]")
	var warm []string
	for i := range 100 {
		warm = append(warm, fmt.Sprintf(`{"type":"track","userId":"w-%d","event":"Warm","context":{"traits":{"email":"w-%d@example.com"}}}`, i, i))
	}
	probe := time.Now()
	s.batch(t, warm)
	s.eventuallyCount(t, "CairnJourney = 'e2e-warm' AND ExecutionStatus = 'Running' AND CairnStep = 'w'", 100, 60*time.Second)
	perHundred := time.Since(probe)
	wait := 25*time.Second + 20*perHundred
	t.Logf("100 contacts reach a wait in %s: version 1's waits last %s", perHundred.Round(time.Millisecond), wait.Round(time.Second))
	s.apply(t, "e2e-mig", fmt.Sprintf(migrationV1, int(wait.Seconds())))
	const n = 500
	groups := map[string]int64{}
	msgs := make([]string, n)
	for i := range n {
		g := []string{"a", "b", "c"}[i%3]
		groups[g]++
		msgs[i] = fmt.Sprintf(`{"type":"track","userId":"m-%03d","event":"Joined","messageId":"mig-%d","context":{"traits":{"email":"m-%03d@example.com","group":%q}}}`, i, i, i, g)
	}
	began := time.Now()
	s.batch(t, msgs)
	for g, want := range groups {
		s.eventuallyCount(t, fmt.Sprintf("CairnJourney = 'e2e-mig' AND CairnJourneyVersion = 1 AND ExecutionStatus = 'Running' AND CairnStep = 'wait-%s'", g), want, wait)
	}
	t.Logf("%d contacts waiting at version 1's waits after %s", n, time.Since(began).Round(time.Millisecond))

	// Deadlines and run ids of a sample, before.
	type seen struct {
		runID string
		until time.Time
		group string
	}
	sample := map[string]seen{}
	for i := 0; i < n; i += 25 {
		wfID := contract.WorkflowID("e2e-mig", s.contact(t, fmt.Sprintf("m-%03d", i)))
		st := s.state(t, wfID)
		require.NotNil(t, st.WaitUntil, wfID)
		require.NotNil(t, st.Next)
		desc, err := s.temporal.DescribeWorkflowExecution(s.ctx, wfID, "")
		require.NoError(t, err)
		sample[wfID] = seen{runID: desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), until: *st.WaitUntil, group: []string{"a", "b", "c"}[i%3]}
	}

	s.apply(t, "e2e-mig", migrationV2)
	mapping := `"map": {"wait-a": "pause-a", "wait-b": "pause-b", "wait-c": "pause-c"}`
	dry := s.callJSON(t, "POST", "/v1/journeys/e2e-mig/migrate", `{"from": 1, "to": 2, `+mapping+`, "dry_run": true}`, 200)
	counts := map[string]float64{}
	for _, st := range dry["steps"].([]any) {
		st := st.(map[string]any)
		counts[st["step"].(string)] = st["contacts"].(float64)
	}
	require.Equal(t, map[string]float64{"hello": 0, "2-branch": 0, "wait-a": float64(groups["a"]), "wait-b": float64(groups["b"]),
		"wait-c": float64(groups["c"]), "old-email": 0, "bye": 0}, counts, "the dry run counts every contact at its step")
	var unmapped []string
	for _, st := range dry["unmapped"].([]any) {
		unmapped = append(unmapped, st.(map[string]any)["step"].(string))
	}
	require.Equal(t, []string{"hello", "2-branch", "old-email", "bye"}, unmapped)
	require.Equal(t, float64(n), dry["moving"])
	require.Equal(t, float64(0), dry["staying"])

	applied := s.callJSON(t, "POST", "/v1/journeys/e2e-mig/migrate", `{"from": 1, "to": 2, `+mapping+`}`, 202)
	progress := applied["progress"].(string)
	var m map[string]any
	require.Eventually(t, func() bool {
		m = s.callJSON(t, "GET", progress, "", 200)
		return m["migration"].(map[string]any)["status"] == "done" && m["remaining"] == float64(0)
	}, wait, 200*time.Millisecond, "migration progress: %v", m)
	require.Equal(t, float64(n), m["migration"].(map[string]any)["signalled"])
	t.Logf("migrated %d runs, %s after they entered", n, time.Since(began).Round(time.Millisecond))
	for g, want := range groups {
		s.eventuallyCount(t, fmt.Sprintf("CairnJourney = 'e2e-mig' AND CairnJourneyVersion = 2 AND ExecutionStatus = 'Running' AND CairnStep = 'pause-%s'", g), want, 10*time.Second)
	}
	for wfID, before := range sample {
		st := s.state(t, wfID)
		require.Equal(t, 2, st.Version, wfID)
		require.Equal(t, "pause-"+before.group, st.CurrentStep, wfID)
		require.NotNil(t, st.WaitUntil)
		require.True(t, before.until.Equal(*st.WaitUntil), "%s: the wait keeps its deadline: %s, now %s", wfID, before.until, st.WaitUntil)
		require.NotNil(t, st.Next, "what comes next")
		require.True(t, before.until.Equal(*st.Next.At), "next at the wait's end")
		if before.group == "c" {
			require.Equal(t, "bye", st.Next.Step)
			require.Equal(t, "timer", st.Next.On)
		}
	}
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM enrollments WHERE journey_id = 'e2e-mig' AND version = 2`) == n
	}, 10*time.Second, 100*time.Millisecond, "the CRM routes by version 2 now")
	// An event reaches a moved run: the dispatcher follows the chain from the run the CRM
	// knows (now closed) to the one open.
	var clicker string
	for wfID, before := range sample {
		if before.group == "b" {
			clicker = wfID
		}
	}
	s.track(t, fmt.Sprintf(`{"userId":"m-%03d","event":"Clicked"}`, sampleIndex(clicker, s, t)))
	require.Eventually(t, func() bool { return s.state(t, clicker).CurrentStep != "pause-b" }, 10*time.Second, 100*time.Millisecond,
		"the click ends the moved run's wait_until")
	delete(sample, clicker)
	// The trigger again reaches a moved run (SignalWithStart answers with its open execution):
	// it is the same run to the CRM, no new entry.
	s.track(t, fmt.Sprintf(`{"userId":"m-%03d","event":"Joined","messageId":"again"}`, sampleIndex(clicker, s, t)))
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM events WHERE dispatched_at IS NULL AND failed_at IS NULL`) == 0
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, n, s.count(t, `SELECT count(*) FROM journey_entries WHERE journey_id = 'e2e-mig'`))

	// The runs complete on version 2's path, each email sent once.
	s.eventuallyCount(t, "CairnJourney = 'e2e-mig' AND ExecutionStatus = 'Running'", 0, wait+time.Minute)
	require.Zero(t, s.count(t, `SELECT count(*) FROM (SELECT 1 FROM email_messages GROUP BY contact_id, template HAVING count(*) > 1) twice`), "nothing sent twice")
	require.Equal(t, n, s.count(t, `SELECT count(*) FROM email_messages WHERE journey_id = 'e2e-mig' AND template = 'mig-hello' AND status = 'sent'`))
	require.Equal(t, n, s.count(t, `SELECT count(*) FROM email_messages WHERE template = 'mig-bye' AND status = 'sent'`))
	require.Zero(t, s.count(t, `SELECT count(*) FROM email_messages WHERE template = 'mig-old'`), "version 1's removed step never ran")
	require.Equal(t, int(groups["a"]), s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = 'migrated'`), "the inserted step, after pause-a")
	for wfID, before := range sample {
		var st contract.State
		require.NoError(t, s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, &st))
		require.Equal(t, contract.StatusCompleted, st.Status)
		require.Equal(t, 2, st.Version)
		var steps []string
		for _, v := range st.Path {
			steps = append(steps, v.Step)
		}
		require.Equal(t, "wait-"+before.group, steps[2], wfID)
		require.Equal(t, "left: moved to version 2 at pause-"+before.group, st.Path[2].Outcome)
		require.Equal(t, "pause-"+before.group, steps[3])
		require.Equal(t, "bye", steps[len(steps)-1])
		require.NotContains(t, steps, "old-email")
	}
	stats := s.callJSON(t, "GET", "/v1/journeys/e2e-mig/stats", "", 200)
	require.Equal(t, float64(n), stats["entered"])
	require.Equal(t, float64(n), stats["completed"])

	for wfID, before := range sample {
		if before.group == "b" {
			recordRunHistory(t, s, wfID, before.runID, "migration-moved")
			recordHistory(t, s, wfID, "migration-resumed")
			break
		}
	}
}

// TestStatsEqualGroundTruth runs 200 contacts into different places of a journey and checks
// every count of GET /v1/journeys/{id}/stats against what the test did.
func TestStatsEqualGroundTruth(t *testing.T) {
	s := setup(t)
	s.template(t, "st-welcome", "https://example.com/welcome")
	s.template(t, "st-thanks", "https://example.com/thanks")
	s.apply(t, "e2e-stats", `
id: e2e-stats
trigger: {event: Joined}
exit: {event: Left}
goals: [{id: bought, when: {event: Order Completed, since_entry: true}, then: thanks}]
steps:
  - {id: welcome, send_email: {template: st-welcome}}
  - branch:
      - when: {field: group, equals: hold}
        steps: [{id: hold, wait: 1h}]
      - else: []
  - {id: rest, wait_until: {condition: {event: Poke}, timeout: 1h}}
  - {id: thanks, send_email: {template: st-thanks}}
`)
	const n = 200
	var msgs []string
	for i := range n {
		group := "rest"
		if i < 60 {
			group = "hold"
		}
		msgs = append(msgs, fmt.Sprintf(`{"type":"track","userId":"s-%03d","event":"Joined","messageId":"st-%d","context":{"traits":{"email":"s-%03d@example.com","group":%q}}}`, i, i, i, group))
	}
	s.batch(t, msgs)
	s.eventuallyCount(t, "CairnJourney = 'e2e-stats' AND ExecutionStatus = 'Running' AND CairnStep = 'hold'", 60, 40*time.Second)
	s.eventuallyCount(t, "CairnJourney = 'e2e-stats' AND ExecutionStatus = 'Running' AND CairnStep = 'rest'", 140, 40*time.Second)

	// Ground truth: 25 of those holding buy (the goal takes them to thanks); 30 of those
	// resting are poked (on to thanks); 20 leave (exit).
	var events []string
	for i := range 25 {
		events = append(events, fmt.Sprintf(`{"type":"track","userId":"s-%03d","event":"Order Completed","properties":{"order_id":"o-%d"}}`, i, i))
	}
	for i := 60; i < 90; i++ {
		events = append(events, fmt.Sprintf(`{"type":"track","userId":"s-%03d","event":"Poke"}`, i))
	}
	for i := 90; i < 110; i++ {
		events = append(events, fmt.Sprintf(`{"type":"track","userId":"s-%03d","event":"Left"}`, i))
	}
	s.batch(t, events)

	// Engagement with the welcome emails: opens (two pixels for one message count once),
	// clicks, and unsubscribes (from contacts still holding, who will get no more email).
	welcome := map[string]string{} // recipient → HTML
	require.Eventually(t, func() bool {
		for _, m := range s.mail.Messages() {
			if strings.HasPrefix(m.Subject, "About st-welcome") {
				welcome[m.To[0]] = m.HTML
			}
		}
		return len(welcome) == n
	}, 30*time.Second, 100*time.Millisecond)
	link := func(to, kind string) string {
		l := regexp.MustCompile(`http://[^"]+/v1/t/` + kind + `/[\w.-]+`).FindString(welcome[to])
		require.NotEmpty(t, l, "%s link for %s", kind, to)
		return l
	}
	opened, clicked, unsubscribed := 0, 0, 0
	for i := range n {
		to := fmt.Sprintf("s-%03d@example.com", i)
		if i%4 == 0 {
			require.Equal(t, 200, s.get(t, "GET", link(to, "o")).StatusCode)
			require.Equal(t, 200, s.get(t, "GET", link(to, "o")).StatusCode)
			opened++
		}
		if i%10 == 0 {
			require.Equal(t, 302, s.get(t, "GET", link(to, "c")).StatusCode)
			clicked++
		}
		if i >= 40 && i < 50 {
			require.Equal(t, 200, s.get(t, "POST", link(to, "u")).StatusCode)
			unsubscribed++
		}
	}

	want := map[string]float64{"entered": n, "running": 60 - 25 + 140 - 30 - 20, "completed": 25 + 30, "exited": 20, "failed": 0, "cancelled": 0}
	wantNow := map[string]float64{"welcome": 0, "2-branch": 0, "hold": 60 - 25, "rest": 140 - 30 - 20, "thanks": 0}
	var stats map[string]any
	require.Eventually(t, func() bool {
		stats = s.callJSON(t, "GET", "/v1/journeys/e2e-stats/stats", "", 200)
		for k, v := range want {
			if stats[k] != v {
				return false
			}
		}
		for _, c := range stats["now"].([]any) {
			c := c.(map[string]any)
			if w, ok := wantNow[c["step"].(string)]; ok && c["contacts"] != w {
				return false
			}
		}
		return true
	}, 40*time.Second, 250*time.Millisecond, "stats never matched: %v", stats)
	require.Equal(t, map[string]any{"bought": float64(25)}, stats["goals"])
	emails := map[string]map[string]any{}
	for _, e := range stats["emails"].([]any) {
		emails[e.(map[string]any)["step"].(string)] = e.(map[string]any)
	}
	require.Equal(t, map[string]any{"step": "welcome", "template": "st-welcome", "sent": float64(n), "opened": float64(opened),
		"clicked": float64(clicked), "unsubscribed": float64(unsubscribed)}, emails["welcome"])
	require.Equal(t, map[string]any{"step": "thanks", "template": "st-thanks", "sent": float64(55), "opened": float64(0),
		"clicked": float64(0), "unsubscribed": float64(0)}, emails["thanks"])
	for _, c := range stats["now"].([]any) {
		c := c.(map[string]any)
		require.Contains(t, c["temporal_ui"], "http://temporal-ui.test/namespaces/default/workflows?query=")
	}

	// Archived with its runs cancelled: each records its end as cancelled, and the trigger
	// starts no new run.
	archived := s.callJSON(t, "POST", "/v1/journeys/e2e-stats/archive", `{"cancel_runs": true}`, 200)
	require.Equal(t, want["running"], archived["cancelled"])
	s.track(t, `{"userId":"s-new","event":"Joined","context":{"traits":{"email":"s-new@example.com"}}}`)
	require.Eventually(t, func() bool {
		stats = s.callJSON(t, "GET", "/v1/journeys/e2e-stats/stats", "", 200)
		return stats["cancelled"] == want["running"] && stats["running"] == float64(0)
	}, 30*time.Second, 250*time.Millisecond, "stats after archiving: %v", stats)
	require.Equal(t, float64(n), stats["entered"], "the archived journey took no one in")
	s.eventuallyCount(t, "CairnJourney = 'e2e-stats' AND ExecutionStatus = 'Running'", 0, 10*time.Second)
}

// A delivery whose provider is missing is not a failed run: the step waits, retried with
// backoff, Temporal UI showing the reason as the pending activity's last failure, and goes on
// once a worker has the provider.
func TestDeliveryNotReadyWaitsAndGoesOnOnceConfigured(t *testing.T) {
	s := setup(t)
	s.apply(t, "e2e-sms", "id: e2e-sms\ntrigger: {event: Ping}\nsteps: [{id: text-them, send_sms: {text: Hello}}, {add_tag: texted}]")
	s.track(t, `{"userId":"lou","event":"Ping","context":{"traits":{"phone":"+15551234567"}}}`)
	wfID := contract.WorkflowID("e2e-sms", s.contact(t, "lou"))
	cd, err := testCodec.Build(s.db, quiet())
	require.NoError(t, err)
	fc := cluster.FailureConverter(cd)
	var reason string
	require.Eventually(t, func() bool {
		desc, err := s.temporal.DescribeWorkflowExecution(s.ctx, wfID, "")
		if err != nil || len(desc.GetPendingActivities()) == 0 || desc.GetPendingActivities()[0].GetLastFailure() == nil {
			return false
		}
		pa := desc.GetPendingActivities()[0]
		reason = fc.FailureToError(pa.GetLastFailure()).Error()
		return pa.GetAttempt() >= 2
	}, 20*time.Second, 100*time.Millisecond)
	require.Contains(t, reason, "CAIRN_SMS_ACCOUNT", "the pending activity's last failure names the setting")
	desc, err := s.temporal.DescribeWorkflowExecution(s.ctx, wfID, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus(), "not failed")

	// A worker with the provider configured picks the step up at its next attempt.
	sms, calls := fakeSMS(t, 0)
	ready := make(chan struct{})
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-done }()
	go func() {
		done <- worker.Run(ctx, worker.Config{Temporal: cluster.Config{Address: s.grpc, Namespace: "default"}, DatabaseURL: s.dbURL,
			Codec: testCodec, Logger: quiet(), SMS: sms, Ready: ready})
	}()
	<-ready
	s.finished(t, wfID)
	require.GreaterOrEqual(t, calls.Load(), int64(1))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE name = 'sms_sent'`))
	recordHistory(t, s, wfID, "delivery-not-ready")
}

// sampleIndex is the number in the user id of the contact a run belongs to.
func sampleIndex(wfID string, s *system, t *testing.T) int {
	t.Helper()
	id, ok := contract.ContactOfWorkflowID(wfID)
	require.True(t, ok)
	var ext string
	require.NoError(t, s.db.QueryRow(s.ctx, `SELECT external_id FROM contacts WHERE id = $1`, id).Scan(&ext))
	var n int
	_, err := fmt.Sscanf(ext, "m-%d", &n)
	require.NoError(t, err)
	return n
}
