package starter_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const subscriptionDoc = `name: Subscription
schema:
  type: object
  properties:
    plan: {type: string}
    status: {enum: [active, past_due, cancelled]}
    renews: {type: string, format: date}
  required: [status]
sources:
  - {event: Subscription Updated, id: subscription_id}
`

func TestObjectTypesAndRecordsAreCheckedWithPathsAndWriteNothingWhenRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "PUT", "/v1/objects/subscription", subscriptionDoc, bearer(adminKey))
	require.Equal(t, 201, r.Status, "%v", r.Body)
	require.Equal(t, "Subscription", r.Body["name"])

	// A definition with mistakes: 422 with every path, no row.
	r = f.do(t, "PUT", "/v1/objects/vehicle", `{"schema": {"type": "object", "properties": {"vin": {"type": "strng"}, "record": {}}}, "sources": [{"event": "tag_added"}]}`, bearer(adminKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	e := errorOf(t, r)
	require.Equal(t, "invalid_object", e["code"])
	var paths []string
	for _, p := range e["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string))
	}
	require.Subset(t, paths, []string{"schema.properties.record", "schema.properties.vin.type", "sources[0].event", "sources[0].id"})
	require.Equal(t, 404, f.do(t, "GET", "/v1/objects/vehicle", "", bearer(adminKey)).Status)
	require.Equal(t, 1, f.count(t, "object_types"))

	// Records through the API.
	r = f.do(t, "PUT", "/v1/objects/subscription/records/sub_1", `{"userId": "ada", "fields": {"status": "active", "plan": "pro", "renews": "2026-05-01"}}`, bearer(adminKey))
	require.Equal(t, 201, r.Status, "%v", r.Body)
	r = f.do(t, "PUT", "/v1/objects/subscription/records/sub_2", `{"userId": "ada", "fields": {"status": "on hold", "renews": "May"}}`, bearer(adminKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	e = errorOf(t, r)
	require.Equal(t, "invalid_record", e["code"])
	require.Equal(t, "fields.renews", e["path"])
	require.Equal(t, 404, f.do(t, "GET", "/v1/objects/subscription/records/sub_2", "", bearer(adminKey)).Status)
	require.Equal(t, 404, f.do(t, "PUT", "/v1/objects/nothing/records/x", `{"userId": "ada", "fields": {}}`, bearer(adminKey)).Status)

	// Records from source events: merged; refused with the event's paths, nothing recorded.
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Subscription Updated","properties":{"subscription_id":"sub_1","status":"past_due"}}`, basic(writeKey)).Status)
	r = f.do(t, "GET", "/v1/objects/subscription/records/sub_1", "", bearer(adminKey))
	require.Equal(t, map[string]any{"status": "past_due", "plan": "pro", "renews": "2026-05-01"}, r.Body["record"].(map[string]any)["fields"])
	events := f.count(t, "events")
	r = f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Subscription Updated","properties":{"subscription_id":"sub_1","renews":"whenever"}}`, basic(writeKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	require.Equal(t, "properties.renews", errorOf(t, r)["path"])
	r = f.do(t, "POST", "/v1/batch", `{"batch":[{"type":"track","userId":"bo","event":"Hello"},{"type":"track","userId":"bo","event":"Subscription Updated","properties":{"subscription_id":"sub_9"}}]}`, basic(writeKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	require.Equal(t, "batch[1].properties", errorOf(t, r)["path"], "status is required")
	require.Equal(t, events, f.count(t, "events"), "nothing of a refused request is recorded")

	// Conditions name defined types only; a segment on records counts them.
	r = f.do(t, "PUT", "/v1/segments/renewing", "condition: {any: [{tag: x}, {object: subscriptions, renews: {within_next: 7d}}]}", bearer(adminKey))
	require.Equal(t, 422, r.Status)
	require.Equal(t, "condition.any[1].object", errorOf(t, r)["problems"].([]any)[0].(map[string]any)["path"])
	require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/past-due", "condition: {object: subscription, where: {status: past_due}}", bearer(adminKey)).Status)
	r = f.do(t, "GET", "/v1/segments/past-due", "", bearer(adminKey))
	require.Equal(t, float64(1), r.Body["count"])
	r = f.do(t, "PUT", "/v1/journeys/renewals", "id: renewals\ntrigger: {object_changed: subscriptio}\nsteps: [{wait_until: {condition: {object: subscriptio}, timeout: 1d}}]", bearer(adminKey))
	require.Equal(t, 422, r.Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/renewals", "id: renewals\ntrigger: {object_changed: subscription, where: {status: past_due}}\nsteps: [{if: {object: subscription, where: {status: past_due}}, then: [{add_tag: dunning}]}]", bearer(adminKey)).Status)

	// A redefinition the stored records do not fit is refused.
	r = f.do(t, "PUT", "/v1/objects/subscription", "schema: {type: object, properties: {status: {const: active}}}", bearer(adminKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	require.Equal(t, `records["sub_1"].status`, errorOf(t, r)["problems"].([]any)[0].(map[string]any)["path"])
	require.Equal(t, 200, f.do(t, "DELETE", "/v1/objects/subscription/records/sub_1", "", bearer(adminKey)).Status)
	require.Equal(t, 404, f.do(t, "DELETE", "/v1/objects/subscription/records/sub_1", "", bearer(adminKey)).Status)
}
