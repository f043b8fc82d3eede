package email_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/email"
)

// fullContext is a contact with everything a template can show: a cart, an order, events,
// recommendations.
func fullContext() email.Data {
	at := time.Date(2026, 5, 4, 16, 0, 0, 0, time.UTC)
	return email.Data{Contact: email.Contact{ID: 1, ExternalID: "ada", Email: "ada@example.com"},
		Fields: map[string]any{"first_name": "Ada", "call_at": "2026-05-06T14:30:00Z", "company": "Acme", "industry": "retail"},
		Context: email.Context{
			Timezone: "Europe/Lisbon",
			Trigger:  email.Event{Name: "cart_abandoned", Properties: map[string]any{"cart_id": "k-9", "title": "The Guide", "url": "https://example.com/products/lamp"}, At: at},
			Event:    email.Event{Name: "Call Completed", Properties: map[string]any{"summary": "We agreed on a plan."}, At: at},
			Cart: email.Cart{Status: "abandoned", Value: 43.5, Currency: "EUR", Properties: map[string]any{"cart_id": "k-9"}, UpdatedAt: at,
				Lines: []email.Line{{SKU: "LAMP", Name: "Desk lamp", Price: 20, Quantity: 2, ImageURL: "https://example.com/i/lamp.png"}, {SKU: "BULB", Price: 3.5, Quantity: 1}}},
			Order: email.Order{OrderID: "o-77", Total: 30, Currency: "EUR", At: at.Add(-40 * 24 * time.Hour),
				Lines: []email.Line{{SKU: "MUG", Name: "Mug", Price: 10, Quantity: 3}}},
			Objects: map[string][]email.Record{"subscription": {
				{ID: "sub_1", Fields: map[string]any{"plan": "Pro", "status": "past_due", "renews": "2026-05-06", "amount": 29.0, "currency": "EUR"}},
				{ID: "sub_0", Fields: map[string]any{"plan": "Starter", "status": "cancelled"}}}},
			Recommend: func(n int) ([]email.Product, error) {
				all := []email.Product{{SKU: "SHADE", Name: "Lamp shade", Price: 12, Currency: "EUR", Reason: "bought_together"},
					{SKU: "DESK", Name: "Desk", Price: 199, Currency: "EUR", URL: "https://example.com/desk", Reason: "viewed"},
					{SKU: "MAT", Price: 9, Currency: "EUR", Reason: "popular"}}
				return all[:min(n, len(all))], nil
			},
		}}
}

func TestEveryExampleTemplateRendersWhatFitsIt(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../examples/templates/*.yaml")
	require.NoError(t, err)
	out := map[string]email.Rendered{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var tpl email.Template
		require.NoError(t, yaml.Unmarshal(raw, &tpl))
		r, err := tpl.Render(fullContext())
		require.NoError(t, err, f)
		require.NotContains(t, r.Text+r.HTML+r.Subject, "<no value>", f)
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = r
		if os.Getenv("CAIRN_SHOW_TEMPLATES") != "" {
			t.Logf("=== %s\nSubject: %s\n%s\n%s", f, r.Subject, r.Text, r.HTML)
		}
	}
	cart := out["cart-reminder-1"]
	require.Equal(t, "Ada, you left 2 items in your cart", cart.Subject)
	for _, want := range []string{"Desk lamp × 2: €40.00", "BULB × 1: €3.50", "Total: €43.50", "Lamp shade: €12.00", "Desk: €199.00",
		"https://example.com/cart?cart=k-9&utm_campaign=cart-recovery&utm_source=cairn"} {
		require.Contains(t, cart.Text, want)
	}
	require.NotContains(t, cart.Text, "MAT", "two recommendations")
	require.Contains(t, out["thanks-for-your-order"].Text, "Mug × 3: €30.00")
	require.Contains(t, out["call-confirmation"].Text, "Wednesday 6 May at 15:30 (WEST)", "in the contact's time zone")
	require.Contains(t, out["we-miss-you"].Text, "since your order of 25 March 2026")
	require.Contains(t, out["payment-last-notice"].Text, "- Pro: €29.00, due 6 May 2026", "the contact's past-due subscription")
	require.NotContains(t, out["payment-last-notice"].Text, "Starter")
}
