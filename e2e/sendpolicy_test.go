package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/worker"
)

// Five journeys email the same contacts the moment one event arrives, under a worker-wide
// cap of 2 emails per 4 seconds: every email goes out in the end, none twice, and no contact
// ever has more than 2 in any 4 seconds. Deferred runs say so in their state and in Temporal
// UI, and the journey's stats count them. A capped send that is not deferred costs its run one
// history event (the version marker) over a step of the same shape without a policy.
func TestCapsHoldRacingJourneysInSecondScaleWindowsAndDeferredSendsAllGoOut(t *testing.T) {
	caps, err := journey.ParseCaps("2/4s")
	require.NoError(t, err)
	s := setup(t, func(w *worker.Config, _ *starter.Config) {
		w.Policy = &journey.Policy{Email: &journey.ChannelPolicy{Caps: caps}}
	})
	s.template(t, "news", "https://example.com/news")
	const journeys, contacts = 5, 4
	for j := range journeys {
		id := fmt.Sprintf("launch-%d", j)
		s.apply(t, id, fmt.Sprintf("id: %s\ntrigger: {event: Launch}\nsteps: [{id: news, send_email: {template: news}}]", id))
	}
	for c := range contacts {
		s.track(t, fmt.Sprintf(`{"userId":"u%d","event":"Launch","context":{"traits":{"email":"u%d@example.com"}}}`, c, c))
	}

	// Some run is held back by the cap, and says until when.
	var held contract.State
	var heldID string
	require.Eventually(t, func() bool {
		for c := range contacts {
			id := s.contact(t, fmt.Sprintf("u%d", c))
			for j := range journeys {
				wf := contract.WorkflowID(fmt.Sprintf("launch-%d", j), id)
				v, err := s.temporal.QueryWorkflow(s.ctx, wf, "", contract.QueryState)
				if err != nil || v.Get(&held) != nil {
					continue
				}
				if strings.HasPrefix(held.WaitingFor, "deferred by cap 2 per 4s until ") {
					heldID = wf
					return true
				}
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, contract.StatusWaiting, held.Status)
	require.NotNil(t, held.WaitUntil)

	s.waitMail(t, journeys*contacts)
	time.Sleep(500 * time.Millisecond)
	require.Len(t, s.mail.Messages(), journeys*contacts, "each email once")
	for c := range contacts {
		id := s.contact(t, fmt.Sprintf("u%d", c))
		rows, err := s.db.Query(s.ctx, `SELECT reserved_at FROM send_reservations WHERE contact_id = $1 ORDER BY reserved_at`, id)
		require.NoError(t, err)
		var at []time.Time
		for rows.Next() {
			var x time.Time
			require.NoError(t, rows.Scan(&x))
			at = append(at, x)
		}
		require.NoError(t, rows.Err())
		require.Len(t, at, journeys)
		for i := 0; i+2 < len(at); i++ {
			require.GreaterOrEqual(t, at[i+2].Sub(at[i]), 4*time.Second, "contact u%d got 3 emails within 4s: %v", c, at)
		}
	}

	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, heldID, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Regexp(t, `^queued news \(deferred (once|\d+ times)\)$`, st.Path[0].Outcome)
	hist := s.decodedHistory(t, heldID)
	timers := 0
	for _, ev := range hist.Events {
		if a := ev.GetTimerStartedEventAttributes(); a != nil {
			timers++
			require.Contains(t, ev.GetUserMetadata().GetSummary().String(), "deferred by cap 2 per 4s until")
		}
	}
	require.Positive(t, timers, "the deferral is a durable timer with a summary")
	recordHistory(t, s, heldID, "send-policy-deferred")

	// Stats count the deferred sends of each journey by rule; together, 3 per contact.
	total := int64(0)
	for j := range journeys {
		status, body := s.call(t, "GET", fmt.Sprintf("/v1/journeys/launch-%d/stats", j), "", asAdmin)
		require.Equal(t, 200, status, body)
		var stats crm.JourneyStats
		require.NoError(t, json.Unmarshal([]byte(body), &stats))
		for _, p := range stats.SendPolicy {
			require.Equal(t, "cap 2 per 4s", p.Rule)
			total += p.Deferred
		}
	}
	require.Equal(t, int64((journeys-2)*contacts), total)

	// History cost: one send under the cap, not deferred, against one add_tag.
	s.apply(t, "capped", "id: capped\ntrigger: {event: Once}\nsteps: [{id: hello, send_email: {template: news}}]")
	s.apply(t, "tagged", "id: tagged\ntrigger: {event: Once}\nsteps: [{id: hello, add_tag: once}]")
	s.track(t, `{"userId":"solo","event":"Once","context":{"traits":{"email":"solo@example.com"}}}`)
	solo := s.contact(t, "solo")
	lengths := map[string]int{}
	for _, j := range []string{"capped", "tagged"} {
		wf := contract.WorkflowID(j, solo)
		require.Eventually(t, func() bool {
			_, err := s.temporal.DescribeWorkflowExecution(s.ctx, wf, "")
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
		require.NoError(t, s.temporal.GetWorkflow(s.ctx, wf, "").Get(s.ctx, &st))
		h := s.decodedHistory(t, wf)
		lengths[j] = len(h.Events)
		if j == "capped" {
			markers := 0
			for _, ev := range h.Events {
				require.NotEqual(t, enumspb.EVENT_TYPE_TIMER_STARTED, ev.GetEventType(), "not deferred")
				if ev.GetEventType() == enumspb.EVENT_TYPE_MARKER_RECORDED && strings.Contains(ev.String(), contract.VersionSendPolicy) {
					markers++
				}
			}
			// Runs start at contract.Revision, which turns the send policy on without a marker.
			require.Equal(t, 0, markers, "a revision-1 run records no send-policy marker")
			recordHistory(t, s, wf, "send-policy-sent")
		}
	}
	t.Logf("history events: a capped send not deferred %d, an add_tag %d", lengths["capped"], lengths["tagged"])
	require.LessOrEqual(t, lengths["capped"]-lengths["tagged"], 2)
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM send_reservations WHERE contact_id = $1`, solo))
}

// decodedHistory is a run's latest history with its payloads decoded, as Temporal UI shows it
// through the codec server.
func (s *system) decodedHistory(t *testing.T, workflowID string) *historypb.History {
	t.Helper()
	h := s.rawHistory(t, workflowID, "")
	cd, err := testCodec.Build(s.db, quiet())
	require.NoError(t, err)
	require.NoError(t, proxy.VisitPayloads(s.ctx, h, proxy.VisitPayloadsOptions{SkipSearchAttributes: true,
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return cd.Decode(ps)
		}}))
	return h
}
