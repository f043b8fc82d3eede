package starter_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAPreviewRendersATemplateForAContactWithItsCartAndEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, body := range []string{
		`{"userId":"ada","event":"Product Added","properties":{"cart_id":"k1","sku":"LAMP","name":"Lamp","price":20,"quantity":2}}`,
		`{"userId":"ada","event":"Product Added","properties":{"cart_id":"k1","sku":"BULB","name":"Bulb","price":3.5}}`,
		`{"userId":"ada","event":"Checkout Started","properties":{"cart_id":"k1","currency":"EUR","value":43.5}}`,
	} {
		require.Equal(t, 200, f.do(t, "POST", "/v1/track", body, basic(writeKey)).Status)
	}
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"first_name":"Ada","timezone":"Asia/Tokyo"}}`, basic(writeKey)).Status)
	r := f.do(t, "PUT", "/v1/templates/cart", `{"subject":"{{field \"first_name\" \"there\"}}, your {{len .Cart.Lines}} items",
		"text":"{{range .Cart.Lines}}{{.Name}} {{money .Total $.Cart.Currency}}\n{{end}}Total {{money .Cart.Value .Cart.Currency}} (cart {{.Trigger.Properties.cart_id | default \"?\"}}, {{date .Trigger.At \"2006-01-02 15:04\"}})",
		"html":"<a href=\"{{url \"https://shop.example.com/cart\" \"id\" .Trigger.Properties.cart_id}}\">Back to your cart</a>"}`, bearer(adminKey))
	require.Equal(t, 201, r.Status, "%v", r.Body)

	r = f.do(t, "POST", "/v1/templates/cart/preview", `{"userId":"ada","event":{"event":"cart_abandoned","properties":{"cart_id":"k1"},"timestamp":"2026-03-01T23:30:00Z"}}`, bearer(adminKey))
	require.Equal(t, 200, r.Status, "%v", r.Body)
	require.Equal(t, "Ada, your 2 items", r.Body["subject"])
	require.Equal(t, "Lamp €40.00\nBulb €3.50\nTotal €43.50 (cart k1, 2026-03-02 08:30)", r.Body["text"], "dates in the contact's time zone")
	require.Equal(t, `<a href="https://shop.example.com/cart?id=k1">Back to your cart</a>`, r.Body["html"])
	require.Zero(t, f.count(t, "email_messages"), "a preview sends nothing")

	// A draft sent with the preview is rendered instead of the stored template.
	r = f.do(t, "POST", "/v1/templates/cart/preview", `{"userId":"ada","template":{"subject":"Draft","text":"{{range recommend 2}}{{.SKU}}{{end}}none"}}`, bearer(adminKey))
	require.Equal(t, 200, r.Status, "%v", r.Body)
	require.Equal(t, "none", r.Body["text"], "no orders anywhere: nothing to recommend")
}

func TestTemplateMistakesAre422WithThePartAndLine(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"price":"cheap"}}`, basic(writeKey)).Status)
	// Saving: a parse error, a field Data lacks.
	r := f.do(t, "PUT", "/v1/templates/bad", `{"subject":"s","text":"ok","html":"<p>\n\n{{if}}</p>"}`, bearer(adminKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	e := errorOf(t, r)
	require.Equal(t, "invalid_template", e["code"])
	require.Equal(t, "html", e["path"])
	p := e["problems"].([]any)[0].(map[string]any)
	require.Equal(t, float64(3), p["line"])
	r = f.do(t, "PUT", "/v1/templates/bad", `{"subject":"s","text":"line 1\n{{.Cart.Nope}}"}`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	require.Equal(t, "text", errorOf(t, r)["path"])
	require.Equal(t, float64(2), errorOf(t, r)["problems"].([]any)[0].(map[string]any)["line"])
	require.Zero(t, f.count(t, "email_templates"))

	// Previewing a draft with a mistake: the path is under template.
	r = f.do(t, "POST", "/v1/templates/x/preview", `{"userId":"ada","template":{"subject":"s","html":"<p>\n{{url \"ftp://x\"}}</p>"}}`, bearer(adminKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	require.Equal(t, "template.html", errorOf(t, r)["path"])
	require.Equal(t, float64(2), errorOf(t, r)["problems"].([]any)[0].(map[string]any)["line"])
	// A template that renders for nobody's data but not this contact's: money of a word.
	require.Equal(t, 201, f.do(t, "PUT", "/v1/templates/price", `{"subject":"s","text":"a\n{{money .Fields.price \"EUR\"}}"}`, bearer(adminKey)).Status)
	r = f.do(t, "POST", "/v1/templates/price/preview", `{"userId":"ada"}`, bearer(adminKey))
	require.Equal(t, 422, r.Status, "%v", r.Body)
	require.Equal(t, "text", errorOf(t, r)["path"])
	require.Contains(t, errorOf(t, r)["message"], "line 2")
	// Unknown contact or template: 404; a bad body: 400; a bad zone: 422 with its path.
	require.Equal(t, 404, f.do(t, "POST", "/v1/templates/price/preview", `{"userId":"nobody"}`, bearer(adminKey)).Status)
	require.Equal(t, 404, f.do(t, "POST", "/v1/templates/none/preview", `{"userId":"ada"}`, bearer(adminKey)).Status)
	require.Equal(t, 400, f.do(t, "POST", "/v1/templates/price/preview", `{"user":"ada"}`, bearer(adminKey)).Status)
	r = f.do(t, "POST", "/v1/templates/price/preview", `{"userId":"ada","timezone":"Mars/Base"}`, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	require.Equal(t, "timezone", errorOf(t, r)["path"])
}
