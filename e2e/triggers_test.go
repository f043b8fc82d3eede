package e2e_test

import (
	"fmt"
	"testing"

	"github.com/cairnhq/cairn/contract"
	"github.com/stretchr/testify/require"
)

// TestEachTriggerKindStartsItsJourney drives every trigger kind not covered elsewhere in this
// package through the real HTTP API, store, dispatcher and Temporal.
func TestEachTriggerKindStartsItsJourney(t *testing.T) {
	s := setup(t)
	kinds := map[string]string{
		"t-event":     "{event: Webinar Joined, where: {topic: pricing}}",
		"t-page":      `{page_visited: "/pricing*"}`,
		"t-form":      "{form_submitted: demo}",
		"t-list":      "{list_subscribed: newsletter}",
		"t-tag-added": "{tag_added: lead}",
		"t-purchase":  "{product_purchased: SKU-7}",
		"t-deal":      "{deal_stage: won, where: {pipeline: sales}}",
		"t-untag":     "{tag_removed: trial}",
	}
	for id, trig := range kinds {
		s.apply(t, id, fmt.Sprintf("id: %s\ntrigger: %s\nsteps: [{add_tag: via-%s}]", id, trig, id))
	}
	// A journey whose step removes a tag: its tag_removed starts t-untag.
	s.apply(t, "t-remover", "id: t-remover\ntrigger: {event: Trial Ended}\nsteps: [{add_tag: trial}, {remove_tag: trial}]")
	status, body := s.call(t, "PUT", "/v1/forms/demo", `{"fields": {"mail": "email"}, "list": "newsletter", "tags": ["lead"]}`, asAdmin)
	require.Equal(t, 201, status, body)

	s.track(t, `{"userId":"vic","event":"Webinar Joined","properties":{"topic":"pricing"}}`)
	status, body = s.call(t, "POST", "/v1/page", `{"userId":"vic","name":"Pricing","properties":{"path":"/pricing/teams"}}`, asWriter)
	require.Equal(t, 200, status, body)
	status, body = s.call(t, "POST", "/v1/forms/demo", `{"mail":"vic@example.com"}`, asWriter)
	require.Equal(t, 200, status, body)
	s.track(t, `{"userId":"vic","event":"Order Completed","properties":{"products":[{"product_id":"p1","sku":"SKU-7"}]}}`)
	status, body = s.call(t, "PUT", "/v1/deals/crm-42", `{"userId":"vic","title":"Acme","pipeline":"sales","stage":"won","value":900}`, asWriter)
	require.Equal(t, 200, status, body)
	s.track(t, `{"userId":"vic","event":"Trial Ended"}`)

	vic, formVic := s.contact(t, "vic"), s.contact(t, "vic@example.com")
	for id := range kinds {
		who := vic
		if id == "t-form" || id == "t-list" || id == "t-tag-added" {
			who = formVic // the form identifies by email
		}
		s.finished(t, contract.WorkflowID(id, who))
		require.Equal(t, 1, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag = $1`, "via-"+id), id)
	}
	// Nothing else started: a non-matching property does not trigger.
	s.track(t, `{"userId":"wes","event":"Webinar Joined","properties":{"topic":"hiring"}}`)
	require.Zero(t, s.runs(t, "t-event", s.contact(t, "wes")))
}
