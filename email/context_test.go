package email_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/email"
)

func render(t *testing.T, text string, d email.Data) string {
	t.Helper()
	r, err := email.Template{Subject: "s", Text: text}.Render(d)
	require.NoError(t, err, text)
	return r.Text
}

func TestHelpersFormatMoneyDatesDefaultsAndURLs(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	d := email.Data{Fields: map[string]any{"plan": "", "company": "Acme & Co"}, Context: email.Context{
		Timezone: "America/New_York",
		Trigger:  email.Event{Name: "cart_abandoned", Properties: map[string]any{"cart_id": "c 1/2", "value": "1234.5"}, At: at},
	}}
	for text, want := range map[string]string{
		`{{money 12.5 "EUR"}}`:                               "€12.50",
		`{{money 1234567.891 "usd"}}`:                        "$1,234,567.89",
		`{{money 1200 "JPY"}}`:                               "¥1,200",
		`{{money -3 "SEK"}}`:                                 "-3.00 SEK",
		`{{money .Trigger.Properties.value "GBP"}}`:          "£1,234.50",
		`{{money .Trigger.Properties.missing "EUR"}}`:        "",
		`{{money 9.5 .Trigger.Properties.missing}}`:          "9.50",
		`{{date .Trigger.At}}`:                               "28 March 2026",
		`{{date .Trigger.At "Mon 2 Jan 15:04 MST"}}`:         "Sat 28 Mar 20:30 EDT",
		`{{date "2026-12-24"}}`:                              "24 December 2026",
		`{{date "2026-03-29T00:30:00Z" "2006-01-02 15:04"}}`: "2026-03-28 20:30",
		`{{.Fields.plan | default "free"}}`:                  "free",
		`{{.Fields.none | default "free"}}`:                  "free",
		`{{.Fields.company | default "you"}}`:                "Acme & Co",
		`{{url "https://shop.example.com/cart?utm=mail" "cart" .Trigger.Properties.cart_id "empty" .Fields.plan}}`: "https://shop.example.com/cart?cart=c+1%2F2&utm=mail",
		`{{.Trigger.Name}}`: "cart_abandoned",
	} {
		require.Equal(t, want, render(t, text, d), text)
	}
	r, err := email.Template{Subject: "s", HTML: `<a href="{{url "https://shop.example.com/c" "q" "a&b" "t" "<x>"}}">x</a>`}.Render(d)
	require.NoError(t, err)
	require.Equal(t, `<a href="https://shop.example.com/c?q=a%26b&amp;t=%3Cx%3E">x</a>`, r.HTML)
}

func TestHelperMistakesNameThePartAndLine(t *testing.T) {
	t.Parallel()
	for tpl, want := range map[email.Template]email.TemplateError{
		{Subject: "s", Text: "a\nb\n{{money \"abc\" \"EUR\"}}"}:            {Part: "text", Line: 3},
		{Subject: "s", HTML: "<p>\n{{url \"javascript:alert(1)\"}}</p>"}:   {Part: "html", Line: 2},
		{Subject: "s", Text: "ok", HTML: "<p>\n\n\n{{date \"soon\"}}</p>"}: {Part: "html", Line: 4},
		{Subject: "Hi {{.Contact.Phone}}", Text: "x"}:                      {Part: "subject", Line: 1},
		{Subject: "s", Text: "{{range .Cart.Lines}}\n{{.Nope}}\n{{end}}"}:  {Part: "text", Line: 1},
		{Subject: "s", Text: "line 1\n{{if}}"}:                             {Part: "text", Line: 2},
		{Subject: "s", Text: "{{recommend 500}}"}:                          {Part: "text", Line: 1},
	} {
		d := email.Data{Fields: map[string]any{}, Context: email.Context{Recommend: func(int) ([]email.Product, error) { return nil, nil },
			Cart: email.Cart{Lines: []email.Line{{SKU: "A"}}}}}
		_, err := tpl.Render(d)
		var te *email.TemplateError
		require.True(t, errors.As(err, &te), "%v: %v", tpl, err)
		require.ErrorIs(t, err, email.ErrTemplate)
		require.Equal(t, want.Part, te.Part, "%v: %v", tpl, err)
		if want.Line > 0 && tpl.Text != "{{range .Cart.Lines}}\n{{.Nope}}\n{{end}}" {
			require.Equal(t, want.Line, te.Line, "%v: %v", tpl, err)
		}
		require.NotEmpty(t, te.Message)
	}
}

func TestATemplateListsTheCartAndRecommendations(t *testing.T) {
	t.Parallel()
	tpl := email.Template{Subject: "Your cart ({{len .Cart.Lines}} items)", Text: `{{range .Cart.Lines}}- {{.Name}} ×{{.Quantity}} {{money .Total $.Cart.Currency}}
{{end}}{{range recommend 2}}* {{.Name}} {{money .Price .Currency}} ({{.Reason}})
{{end}}`}
	calls := 0
	d := email.Data{Context: email.Context{
		Cart: email.Cart{Currency: "EUR", Lines: []email.Line{{Name: "Lamp", Price: 20, Quantity: 2}, {Name: "Bulb", Price: 3.5, Quantity: 1}}},
		Recommend: func(n int) ([]email.Product, error) {
			calls++
			return []email.Product{{Name: "Shade", Price: 12, Currency: "EUR", Reason: "bought_together"}, {Name: "Cable", Price: 4, Currency: "EUR", Reason: "popular"}}[:n], nil
		},
	}}
	r, err := tpl.Render(d)
	require.NoError(t, err)
	require.Equal(t, "Your cart (2 items)", r.Subject)
	require.Equal(t, "- Lamp ×2 €40.00\n- Bulb ×1 €3.50\n* Shade €12.00 (bought_together)\n* Cable €4.00 (popular)\n", r.Text)
	require.Equal(t, 1, calls)
	// Saved templates are checked for a contact with nothing: no cart, no recommendations.
	require.NoError(t, tpl.Check())
}
