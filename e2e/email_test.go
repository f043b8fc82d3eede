package e2e_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/dev/mailcatcher"
	"github.com/cairnhq/cairn/email"
)

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (s *system) get(t *testing.T, method, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func (s *system) waitMail(t *testing.T, n int) []mailcatcher.Message {
	t.Helper()
	require.Eventually(t, func() bool { return len(s.mail.Messages()) >= n }, 20*time.Second, 50*time.Millisecond)
	return s.mail.Messages()
}

func TestEmailOpensClicksAndUnsubscribeFlowBackIntoTheJourney(t *testing.T) {
	s := setup(t)
	s.template(t, "hello", "https://shop.example.com/new?ref=mail")
	s.apply(t, "e2e-mail", `
id: e2e-mail
trigger: {event: Signed Up}
exit: {tag: unsubscribed}
steps:
  - {id: hello, send_email: {template: hello}}
  - id: opened?
    wait_until: {condition: {event: email_opened, where: {template: hello}, since_entry: true}, timeout: 1h}
    then: [{add_tag: opener}]
  - id: clicked?
    wait_until: {condition: {event: email_clicked, where: {template: hello}, since_entry: true}, timeout: 1h}
    then: [{add_tag: clicker}]
  - {id: later, wait: 1h}
  - {send_email: {template: hello}}
`)
	s.track(t, `{"userId":"nia","event":"Signed Up","context":{"traits":{"email":"nia@example.com","first_name":"Nia"}}}`)
	nia := s.contact(t, "nia")
	wfID := contract.WorkflowID("e2e-mail", nia)
	m := s.waitMail(t, 1)[0]
	require.Equal(t, "About hello, Nia", m.Subject)
	require.Equal(t, []string{"nia@example.com"}, m.To)

	links := regexp.MustCompile(`http://[^"]+/v1/t/(o|c|u)/[\w.-]+`).FindAllString(m.HTML, -1)
	byKind := map[string]string{}
	for _, l := range links {
		byKind[l[strings.Index(l, "/v1/t/")+6:][:1]] = l
	}
	require.Len(t, byKind, 3, "pixel, click and unsubscribe links in %s", m.HTML)

	// The pixel records the open and the journey waiting on it moves on.
	resp := s.get(t, "GET", byKind["o"])
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "image/gif", resp.Header.Get("Content-Type"))
	require.Eventually(t, func() bool { return s.state(t, wfID).CurrentStep == "clicked?" }, 10*time.Second, 50*time.Millisecond)

	// The click redirects to the original link only, and moves the journey on again.
	resp = s.get(t, "GET", byKind["c"])
	require.Equal(t, 302, resp.StatusCode)
	require.Equal(t, "https://shop.example.com/new?ref=mail", resp.Header.Get("Location"))
	require.Eventually(t, func() bool { return s.state(t, wfID).CurrentStep == "later" }, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE name = 'email_clicked' AND properties->>'link' = 'https://shop.example.com/new?ref=mail'`))

	// Tampered or foreign tokens: 400 or 404, never a redirect.
	tampered := byKind["c"][:len(byKind["c"])-3] + "AAA"
	require.Equal(t, 400, s.get(t, "GET", tampered).StatusCode)
	forged := strings.Replace(byKind["c"], "/v1/t/c/", "/v1/t/o/", 1)
	require.Equal(t, 400, s.get(t, "GET", forged).StatusCode, "a click token is no open token")
	signer := email.Signer{Key: []byte(trackingKey)}
	unknown := fmt.Sprintf("%s/v1/t/c/%s", s.url, signer.Sign(email.Claims{Kind: email.KindClick, MessageID: 9999, ContactID: nia, URL: "https://evil.example.com"}))
	require.Equal(t, 404, s.get(t, "GET", unknown).StatusCode)

	require.Equal(t, 400, s.get(t, "POST", byKind["u"]+"x").StatusCode, "a tampered unsubscribe link is refused")

	// Unsubscribe: the link shows a confirmation; the one-click POST unsubscribes, and the
	// journey's exit takes the contact out before the second email.
	resp = s.get(t, "GET", byKind["u"])
	require.Equal(t, 200, resp.StatusCode)
	require.Zero(t, s.count(t, `SELECT count(*) FROM contacts WHERE unsubscribed_at IS NOT NULL`), "GET alone unsubscribes no one")
	resp = s.get(t, "POST", byKind["u"])
	require.Equal(t, 200, resp.StatusCode)

	var st contract.State
	require.NoError(t, s.temporal.GetWorkflow(s.ctx, wfID, "").Get(s.ctx, &st))
	require.Equal(t, contract.StatusExited, st.Status)
	require.Len(t, s.mail.Messages(), 1, "no marketing email after unsubscribing")
	require.Equal(t, 3, s.count(t, `SELECT count(*) FROM contact_tags WHERE tag IN ('opener', 'clicker', 'unsubscribed') AND contact_id = $1`, nia))
}

func TestTemplatesAreCheckedWhenSaved(t *testing.T) {
	s := setup(t)
	status, body := s.call(t, "PUT", "/v1/templates/bad", `{"subject": "Hi {{.Contact.Phone}}", "text": "x"}`, asAdmin)
	require.Equal(t, 422, status, body)
	require.Contains(t, body, "Phone")
	status, body = s.call(t, "PUT", "/v1/templates/bad", `{"subject": "Hi", "txt": "x"}`, asAdmin)
	require.Equal(t, 400, status, body)
	require.Contains(t, body, "txt")
	status, _ = s.call(t, "GET", "/v1/templates/bad", "", asAdmin)
	require.Equal(t, 404, status)
}
