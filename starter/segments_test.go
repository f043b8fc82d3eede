package starter_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSegmentsAreCheckedCountedAndListedPageByPage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "PUT", "/v1/segments/pro", `{"name": "Pro", "condition": {"all": [{"field": "plan", "equal": "pro"}]}}`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	probs := errorOf(t, r)["problems"].([]any)
	require.Equal(t, "condition.all[0].equal", probs[0].(map[string]any)["path"])
	require.Zero(t, f.count(t, "segments"))

	r = f.do(t, "PUT", "/v1/segments/pro", "name: Pro\ncondition: {field: plan, equals: pro}\n", bearer(adminKey))
	require.Equal(t, 201, r.Status)
	for i := 0; i < 5; i++ {
		plan := "pro"
		if i == 2 {
			plan = "free"
		}
		require.Equal(t, 200, f.do(t, "POST", "/v1/identify", fmt.Sprintf(`{"userId":"u%d","traits":{"plan":"%s"}}`, i, plan), basic(writeKey)).Status)
	}
	r = f.do(t, "GET", "/v1/segments/pro", "", bearer(adminKey))
	require.Equal(t, 200, r.Status)
	require.Equal(t, float64(4), r.Body["count"])

	var seen []string
	after := ""
	for page := 0; page < 5; page++ {
		r = f.do(t, "GET", "/v1/segments/pro/contacts?limit=3&after="+after, "", bearer(adminKey))
		require.Equal(t, 200, r.Status)
		for _, c := range r.Body["contacts"].([]any) {
			seen = append(seen, c.(map[string]any)["external_id"].(string))
		}
		next, ok := r.Body["next"].(string)
		if !ok {
			break
		}
		after = next
	}
	require.Equal(t, []string{"u0", "u1", "u3", "u4"}, seen)

	r = f.do(t, "GET", "/v1/contacts/u0", "", bearer(adminKey))
	require.Equal(t, []any{"pro"}, r.Body["segments"])
	require.Equal(t, 400, f.do(t, "GET", "/v1/segments/pro/contacts?limit=0", "", bearer(adminKey)).Status)
	require.Equal(t, 404, f.do(t, "GET", "/v1/segments/nope", "", bearer(adminKey)).Status)
}

func TestConditionsOnUndefinedFieldsOrWithTheWrongOperatorAreRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 200, f.do(t, "PUT", "/v1/fields/seats", `{"type": "number", "label": "Seats"}`, bearer(adminKey)).Status)
	require.Equal(t, 200, f.do(t, "PUT", "/v1/fields/renewal", `{"type": "date"}`, bearer(adminKey)).Status)
	require.Equal(t, 400, f.do(t, "PUT", "/v1/fields/x", `{"type": "money"}`, bearer(adminKey)).Status)

	r := f.do(t, "PUT", "/v1/journeys/j", `
id: j
trigger: {event: e}
entry: {all: [{field: seats, contains: "5"}, {field: colour, equals: red}]}
steps:
  - if: {field: seats, equals: many}
    then: [end]
  - {wait_until: {condition: {field: renewal, within_last: 3d}, timeout: 1d}}
`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	var paths []string
	for _, p := range errorOf(t, r)["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string)+": "+p.(map[string]any)["message"].(string))
	}
	require.Len(t, paths, 3, "%v", paths)
	require.Contains(t, paths[0], "entry.all[0].contains: seats is a number field")
	require.Contains(t, paths[1], `entry.all[1].field: "colour" is not a defined field`)
	require.Contains(t, paths[2], "steps[0].if.equals: seats is a number field: many is not a number")
	require.Zero(t, f.count(t, "journeys"))

	r = f.do(t, "PUT", "/v1/segments/s", `{"condition": {"field": "renewal", "gt": 3}}`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/s", `{"condition": {"all": [{"field": "renewal", "anniversary": true}, {"field": "email", "is_set": true}]}}`, bearer(adminKey)).Status)
}
