package starter_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/starter"
)

// The split tests' results come by API with the test's parameters, each variant's numbers and
// the leader; an unknown journey is a 404.
func TestSplitTestResultsByAPI(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.Temporal = noRuns{} })
	doc := `{"id": "subjects", "trigger": {"event": "Signed Up"}, "steps": [{"id": "subject", "split_test": {
		"variants": [{"id": "short", "steps": [{"send_email": {"template": "s"}}]}, {"id": "long", "steps": [{"send_email": {"template": "l"}}]}],
		"metric": "opened", "min_sample": 50, "confidence": 0.9, "max_duration": "7d", "default": "short"}}]}`
	for _, id := range []string{"s", "l"} {
		r := f.do(t, "PUT", "/v1/templates/"+id, `{"subject": "Hi", "text": "Hello"}`, bearer(adminKey))
		require.Contains(t, []int{200, 201}, r.Status, r.Body)
	}
	r := f.do(t, "PUT", "/v1/journeys/subjects", doc, bearer(adminKey))
	require.Equal(t, 201, r.Status, r.Body)

	r = f.do(t, "GET", "/v1/journeys/subjects/split-tests", "", bearer(adminKey))
	require.Equal(t, 200, r.Status, r.Body)
	tests := r.Body["split_tests"].([]any)
	require.Len(t, tests, 1)
	st := tests[0].(map[string]any)
	require.Equal(t, "waiting", st["status"])
	require.Equal(t, "subject", st["step"])
	require.Equal(t, "opened", st["metric"])
	require.Equal(t, 0.9, st["confidence"])
	require.Equal(t, "1w", st["max_duration"])

	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	for i := range 3 {
		_, _, err := crm.RecordEvent(f.ctx, f.store, crm.EventInput{ExternalID: fmt.Sprintf("u%d", i), Name: "identify", Source: "test", OccurredAt: time.Now()})
		require.NoError(t, err)
		var id int64
		require.NoError(t, f.store.QueryRow(f.ctx, `SELECT id FROM contacts WHERE external_id = $1`, fmt.Sprintf("u%d", i)).Scan(&id))
		_, err = crm.AssignSplit(f.ctx, f.store, crm.SplitVisit{Key: fmt.Sprintf("k%d", i), Journey: "subjects", Step: "subject", ContactID: id,
			RunKey: fmt.Sprintf("journey:subjects:%d/r/", id), RunID: "r", At: time.Now()}, *j.Steps[0].SplitTest)
		require.NoError(t, err)
	}
	r = f.do(t, "GET", "/v1/journeys/subjects/split-tests", "", bearer(adminKey))
	require.Equal(t, 200, r.Status, r.Body)
	st = r.Body["split_tests"].([]any)[0].(map[string]any)
	require.Equal(t, "running", st["status"])
	variants := st["variants"].([]any)
	require.Equal(t, map[string]any{"id": "short", "contacts": 2.0, "conversions": 0.0, "rate": 0.0}, variants[0])
	require.Equal(t, 1.0, variants[1].(map[string]any)["contacts"])
	require.Equal(t, false, st["significant"])
	require.Nil(t, st["decision"])

	r = f.do(t, "GET", "/v1/journeys/nope/split-tests", "", bearer(adminKey))
	require.Equal(t, 404, r.Status, r.Body)

	// The journey's page shows them too.
	req, err := http.NewRequest("GET", f.srv.URL+"/ui/journeys/subjects", nil)
	require.NoError(t, err)
	req.SetBasicAuth("me", adminKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(page))
	for _, want := range []string{`<h2>Split test subject</h2>`, `class="split-test" data-step="subject"`,
		`<tr data-variant="short"><td>short</td><td>2</td><td>0</td><td>0.0 %</td></tr>`, "leader short"} {
		require.Contains(t, string(page), want)
	}
}

// Caps, quiet hours and split tests that cannot work are refused when the journey is applied,
// each problem at its path, and nothing is stored.
func TestImpossiblePoliciesAndSplitTestsAreRefusedAtApplyTime(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "PUT", "/v1/journeys/bad", `{"id": "bad", "trigger": {"event": "A"},
		"policy": {"email": {"caps": [{"max": 0, "per": "1d"}], "quiet_hours": {"from": "21:00", "to": "21:00"}}},
		"steps": [{"id": "t", "split_test": {"variants": [{"id": "a", "steps": [{"add_tag": "a"}]}, {"id": "b", "steps": []}],
			"metric": "goal:nope", "confidence": 1.5}}]}`, bearer(adminKey))
	require.Equal(t, 422, r.Status, r.Body)
	var paths []string
	for _, p := range errorOf(t, r)["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string))
	}
	require.ElementsMatch(t, []string{"policy.email.caps[0].max", "policy.email.quiet_hours",
		"steps[0].split_test.variants[1].steps", "steps[0].split_test.metric", "steps[0].split_test.confidence"}, paths)
	require.Zero(t, f.count(t, "journeys"))
}
