package email_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/email"
)

func TestTemplateRendersFieldsWithFallbacks(t *testing.T) {
	t.Parallel()
	tpl := email.Template{ID: "t", Subject: "Hi {{field \"first_name\" \"there\"}}", Text: "Score {{.Score}} for {{.Contact.Email}}",
		HTML: `<p>Hi {{field "first_name" "there"}} <b>{{field "company"}}</b></p>`}
	r, err := tpl.Render(email.Data{Contact: email.Contact{Email: "a@example.com"}, Fields: map[string]any{"first_name": "Ada", "company": "<Evil>"}, Score: 7})
	require.NoError(t, err)
	require.Equal(t, "Hi Ada", r.Subject)
	require.Equal(t, "Score 7 for a@example.com", r.Text)
	require.Contains(t, r.HTML, "&lt;Evil&gt;", "HTML parts escape contact data")

	r, err = tpl.Render(email.Data{Fields: map[string]any{}})
	require.NoError(t, err)
	require.Equal(t, "Hi there", r.Subject)

	r, err = tpl.Render(email.Data{Fields: map[string]any{"firstName": "Sam"}})
	require.NoError(t, err)
	require.Equal(t, "Hi Sam", r.Subject, "Segment's camelCase traits are found by their snake_case names")
}

func TestTemplateCheckFindsErrorsBeforeAnyContactGetsIt(t *testing.T) {
	t.Parallel()
	for tpl, want := range map[email.Template]string{
		{Subject: "Hi {{.Contact.Phone}}", Text: "x"}: "can't evaluate field Phone",
		{Subject: "Hi {{", Text: "x"}:                 "subject",
		{Subject: "", Text: "x"}:                      "subject is required",
		{Subject: "s"}:                                "an html or a text part",
		{Subject: "s", HTML: "<p>{{.Nope}}</p>"}:      "html",
	} {
		err := tpl.Check()
		require.ErrorIs(t, err, email.ErrTemplate)
		require.Contains(t, err.Error(), want)
	}
}

func TestTrackingRewritesLinksAddsPixelAndUnsubscribeAndVerifies(t *testing.T) {
	t.Parallel()
	tr := email.Tracker{Signer: email.Signer{Key: []byte("k")}, BaseURL: "https://cairn.example.com/"}
	m := email.Message{HTML: `<html><body><a href="https://shop.example.com/cart?x=1&amp;y=2">cart</a> <a href="mailto:a@b.c">mail</a></body></html>`, Text: "Hello"}
	require.NoError(t, tr.Apply(&m, 12, 34))

	links := regexp.MustCompile(`https://cairn\.example\.com/v1/t/(\w)/([\w.-]+)`).FindAllStringSubmatch(m.HTML, -1)
	require.Len(t, links, 3, "the click link, the unsubscribe link and the pixel: %s", m.HTML)
	require.Contains(t, m.HTML, `href="mailto:a@b.c"`, "only http(s) links are tracked")
	c, err := tr.Verify(links[0][2], email.KindClick, time.Now())
	require.NoError(t, err)
	require.Equal(t, email.Claims{Kind: "c", MessageID: 12, ContactID: 34, URL: "https://shop.example.com/cart?x=1&y=2"}, c)
	require.Contains(t, m.Text, "Unsubscribe: https://cairn.example.com/v1/t/u/")
	require.True(t, strings.HasPrefix(m.Unsubscribe, "https://cairn.example.com/v1/t/u/"))

	// Tampering with the payload, the signature, the kind or the key is refused.
	tok := links[0][2]
	_, err = tr.Verify("x"+tok, email.KindClick, time.Now())
	require.ErrorIs(t, err, email.ErrBadToken)
	_, err = tr.Verify(tok+"A", email.KindClick, time.Now())
	require.ErrorIs(t, err, email.ErrBadToken)
	_, err = tr.Verify(tok, email.KindOpen, time.Now())
	require.ErrorIs(t, err, email.ErrBadToken)
	_, err = email.Signer{Key: []byte("other")}.Verify(tok, email.KindClick, time.Now())
	require.ErrorIs(t, err, email.ErrBadToken)
}

func TestEveryTemplateTheExamplesSendExistsAndChecks(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../examples/*.yaml")
	require.NoError(t, err)
	used := regexp.MustCompile(`send_email: \{template: ([\w.-]+)\}`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			raw, err := os.ReadFile(filepath.Join("../examples/templates", m[1]+".yaml"))
			require.NoError(t, err, "%s sends %s", f, m[1])
			var tpl email.Template
			require.NoError(t, yaml.Unmarshal(raw, &tpl))
			require.NoError(t, tpl.Check(), m[1])
		}
	}
}
