package e2e_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
)

// A split test end to end: contacts take the variants in turn, the opens recorded by the
// tracking pixel count for their variant in the results the API gives, and a send at the best
// time of a contact with no history goes at once.
func TestSplitTestResultsFollowTrackedOpensAndBestTimeSends(t *testing.T) {
	s := setup(t)
	s.template(t, "short", "https://example.com/s")
	s.template(t, "long", "https://example.com/l")
	s.apply(t, "subjects", `
id: subjects
trigger: {event: Signed Up}
steps:
  - id: subject
    split_test:
      variants:
        - {id: short, steps: [{id: send-short, send_email: {template: short}}]}
        - {id: long, steps: [{id: send-long, send_email: {template: long, at: best_time}}]}
      metric: opened
      min_sample: 50
  - {id: after, wait_for_best_time: {within: 24h}}
`)
	const n = 4
	for i := range n {
		s.track(t, fmt.Sprintf(`{"userId":"s%d","event":"Signed Up","context":{"traits":{"email":"s%d@example.com"}}}`, i, i))
	}
	msgs := s.waitMail(t, n)
	// Everyone opens the short one; nobody the long one.
	pixel := regexp.MustCompile(`http://[^"]+/v1/t/o/[\w.-]+`)
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, "About short") {
			require.Equal(t, 200, s.get(t, "GET", pixel.FindString(m.HTML)).StatusCode)
		}
	}
	var wfID string
	for i := range n {
		wfID = contract.WorkflowID("subjects", s.contact(t, fmt.Sprintf("s%d", i)))
		var st contract.State
		require.NoError(t, s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, &st))
		require.Equal(t, contract.StatusCompleted, st.Status)
		require.Contains(t, st.Path[0].Outcome, "(in the test)")
		require.Contains(t, st.Path[2].Outcome, "no learned hour fits")
	}
	var body struct {
		SplitTests []struct {
			Status   string `json:"status"`
			Leader   string `json:"leader"`
			Variants []struct {
				ID          string `json:"id"`
				Contacts    int    `json:"contacts"`
				Conversions int    `json:"conversions"`
			} `json:"variants"`
		} `json:"split_tests"`
	}
	require.Eventually(t, func() bool {
		status, raw := s.call(t, "GET", "/v1/journeys/subjects/split-tests", "", asAdmin)
		require.Equal(t, 200, status, raw)
		require.NoError(t, json.Unmarshal([]byte(raw), &body))
		return body.SplitTests[0].Variants[0].Conversions == n/2
	}, 10*time.Second, 50*time.Millisecond)
	st := body.SplitTests[0]
	require.Equal(t, "running", st.Status, "under min_sample")
	require.Equal(t, "short", st.Leader)
	require.Equal(t, n/2, st.Variants[0].Contacts)
	require.Equal(t, n/2, st.Variants[1].Contacts)
	require.Zero(t, st.Variants[1].Conversions)
	recordHistory(t, s, wfID, "split-test-best-time")
}
