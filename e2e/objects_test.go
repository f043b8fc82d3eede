package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
)

// TestARecordChangedByASourceEventStartsTheDunningExample: the example subscription type and
// dunning journey, applied through the API; the billing system's Subscription Updated marks a
// subscription past due, which changes the record, which starts the journey (one run per
// subscription), whose email shows the record's fields.
func TestARecordChangedByASourceEventStartsTheDunningExample(t *testing.T) {
	s := setup(t)
	read := func(parts ...string) string {
		b, err := os.ReadFile(filepath.Join(append([]string{"..", "examples"}, parts...)...))
		require.NoError(t, err)
		return string(b)
	}
	status, body := s.call(t, "PUT", "/v1/objects/subscription", read("objects", "subscription.yaml"), asAdmin)
	require.Equal(t, 201, status, body)
	for _, id := range []string{"payment-failed", "payment-last-notice"} {
		status, body := s.call(t, "PUT", "/v1/templates/"+id, read("templates", id+".yaml"), asAdmin)
		require.Equal(t, 201, status, body)
	}
	s.apply(t, "subscription-dunning", read("subscription-dunning.yaml"))

	s.track(t, `{"userId":"ada","event":"Subscription Updated","context":{"traits":{"email":"ada@example.com","first_name":"Ada"}},
		"properties":{"subscription_id":"sub_1","plan":"Pro","status":"active","renews":"2026-05-01","amount":29,"currency":"EUR"}}`)
	s.track(t, `{"userId":"ada","event":"Subscription Updated","properties":{"subscription_id":"sub_1","status":"past_due"}}`)
	var text string
	require.Eventually(t, func() bool {
		for _, m := range s.mail.Messages() {
			if strings.Contains(m.Subject, "payment did not go through") {
				text = m.Text
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond)
	require.Contains(t, text, "payment of €29.00 for your Pro plan, due 1 May 2026", "the record's fields, merged from both events")
	ada := s.contact(t, "ada")
	wf := contract.KeyedWorkflowID("subscription-dunning", ada, contract.RunKey("sub_1"))
	require.Eventually(t, func() bool { return s.state(t, wf).CurrentStep == "fixed?" }, 10*time.Second, 50*time.Millisecond)

	// Paid: the record is active again, the wait holds, the run ends without the last notice.
	s.track(t, `{"userId":"ada","event":"Subscription Updated","properties":{"subscription_id":"sub_1","status":"active","renews":"2026-06-01"}}`)
	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, wf, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Equal(t, "condition met", st.Path[len(st.Path)-1].Outcome)
	require.Len(t, s.mail.Messages(), 1)
	recordHistory(t, s, wf, "object-dunning-trigger-context")
}
