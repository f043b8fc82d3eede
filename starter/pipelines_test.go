package starter_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPipelinesArePutAndReadWithTheAdminKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	body := `{"name": "Sales", "stages": [{"id": "lead", "name": "Lead"}, {"id": "won", "name": "Won"}]}`
	require.Equal(t, 403, f.do(t, "PUT", "/v1/pipelines/sales", body, bearer(writeKey)).Status)
	r := f.do(t, "PUT", "/v1/pipelines/sales", body, bearer(adminKey))
	require.Equal(t, 200, r.Status, r.Body)
	require.Equal(t, 200, f.do(t, "PUT", "/v1/deals/crm-1", `{"userId": "ada", "pipeline": "sales", "stage": "proposal"}`, basic(writeKey)).Status)

	r = f.do(t, "GET", "/v1/pipelines/sales", "", bearer(adminKey))
	require.Equal(t, 200, r.Status)
	require.Equal(t, "Sales", r.Body["name"])
	stages := r.Body["stages"].([]any)
	require.Len(t, stages, 3)
	last := stages[2].(map[string]any)
	require.Equal(t, "proposal", last["id"], "a deal's unknown stage is appended")
	require.EqualValues(t, 3, last["position"])

	r = f.do(t, "PUT", "/v1/pipelines/sales", `{"name": "Sales", "stages": [{"id": "lead"}, {"id": ""}, {"id": "lead"}]}`, bearer(adminKey))
	require.Equal(t, 400, r.Status)
	e := errorOf(t, r)
	require.Equal(t, "stages[1].id", e["path"])
	require.Len(t, e["problems"], 2)
	require.Equal(t, "stages[2].id", e["problems"].([]any)[1].(map[string]any)["path"])
	require.Len(t, f.do(t, "GET", "/v1/pipelines/sales", "", bearer(adminKey)).Body["stages"], 3, "a refused request changes nothing")

	require.Equal(t, 400, f.do(t, "PUT", "/v1/pipelines/sales", `{"name": "Sales", "steps": []}`, bearer(adminKey)).Status)
	require.Equal(t, 404, f.do(t, "GET", "/v1/pipelines/nope", "", bearer(adminKey)).Status)
}
