package starter_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/starter"
)

const trackingKey = "tk_test"

// clock is a settable clock for the API.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// sentEmail records a contact and a message sent to it, as a send_email step would.
func sentEmail(t *testing.T, f *fixture) (messageID, contactID int64) {
	t.Helper()
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"email":"ada@example.com"}}`, basic(writeKey)).Status)
	c, err := crm.ContactByExternalID(f.ctx, f.store, "ada")
	require.NoError(t, err)
	_, err = crm.PutTemplate(f.ctx, f.store, email.Template{ID: "news", Subject: "News", Text: "Hello"})
	require.NoError(t, err)
	es, err := crm.ClaimEmail(f.ctx, f.store, "send-1", c.ID, "news", nil, func(*crm.EmailSend) error { return nil })
	require.NoError(t, err)
	return es.MessageID, c.ID
}

// get requests a tracking link without following redirects.
func (f *fixture) get(t *testing.T, method, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestEveryChangedCharacterOfATrackingLinkIsRefusedAndNeverRedirects(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.TrackingKey = []byte(trackingKey) })
	msg, contact := sentEmail(t, f)
	tr := email.Tracker{Signer: email.Signer{Key: []byte(trackingKey)}, BaseURL: f.srv.URL, Expiry: email.DefaultExpiry}
	links := map[string]string{
		"GET open":         tr.URL(email.Claims{Kind: email.KindOpen, MessageID: msg, ContactID: contact}),
		"GET click":        tr.URL(email.Claims{Kind: email.KindClick, MessageID: msg, ContactID: contact, URL: "https://shop.example.com/new"}),
		"POST unsubscribe": tr.URL(email.Claims{Kind: email.KindUnsubscribe, MessageID: msg, ContactID: contact}),
		"GET unsubscribe":  tr.URL(email.Claims{Kind: email.KindUnsubscribe, MessageID: msg, ContactID: contact}),
	}
	for name, link := range links {
		method := strings.Fields(name)[0]
		at := strings.LastIndex(link, "/") + 1
		token := link[at:]
		for i := 0; i < len(token); i++ {
			for _, r := range []string{"A", "g", "0", "-", "_", ".", "%0A", "%00", "%FF"} {
				if token[i:i+1] == r {
					continue
				}
				resp := f.get(t, method, link[:at]+token[:i]+r+token[i+1:])
				require.Equal(t, 400, resp.StatusCode, "%s with position %d changed to %s", name, i, r)
				require.Empty(t, resp.Header.Get("Location"))
			}
		}
	}
	require.Zero(t, f.count(t, `events WHERE name IN ('email_opened', 'email_clicked', 'unsubscribed')`))
	require.Zero(t, f.count(t, `contacts WHERE unsubscribed_at IS NOT NULL`))
}

func TestARepeatedOpenOrClickWithinTheWindowCountsOnce(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	f := setupWith(t, func(a *starter.API) { a.TrackingKey = []byte(trackingKey); a.Clock = clk })
	clk.set(time.Now())
	msg, contact := sentEmail(t, f)
	tr := email.Tracker{Signer: email.Signer{Key: []byte(trackingKey)}, BaseURL: f.srv.URL}
	open := tr.URL(email.Claims{Kind: email.KindOpen, MessageID: msg, ContactID: contact})
	clickA := tr.URL(email.Claims{Kind: email.KindClick, MessageID: msg, ContactID: contact, URL: "https://shop.example.com/a"})
	clickB := tr.URL(email.Claims{Kind: email.KindClick, MessageID: msg, ContactID: contact, URL: "https://shop.example.com/b?" + strings.Repeat("long", 1000)})

	// Start 5 s into a minute of the clock: the default window is that minute.
	t0 := time.Unix(time.Now().Unix()/60*60+5, 0)
	at := func(d time.Duration, link string) *http.Response {
		clk.set(t0.Add(d))
		return f.get(t, "GET", link)
	}
	require.Equal(t, 200, at(0, open).StatusCode)
	require.Equal(t, 200, at(30*time.Second, open).StatusCode, "the pixel is served every time")
	require.Equal(t, 1, f.count(t, `events WHERE name = 'email_opened'`), "two opens within the window record one")
	require.Equal(t, 200, at(65*time.Second, open).StatusCode)
	require.Equal(t, 2, f.count(t, `events WHERE name = 'email_opened'`), "after the window a second open counts")

	require.Equal(t, 302, at(0, clickA).StatusCode)
	require.Equal(t, 302, at(2*time.Second, clickA).StatusCode, "a double click still redirects")
	require.Equal(t, 302, at(3*time.Second, clickB).StatusCode)
	require.Equal(t, 1, f.count(t, `events WHERE name = 'email_clicked' AND properties->>'link' = 'https://shop.example.com/a'`))
	require.Equal(t, 1, f.count(t, `events WHERE name = 'email_clicked' AND properties->>'link' LIKE 'https://shop.example.com/b%'`), "another link is another click")
	require.Equal(t, 302, at(61*time.Second, clickA).StatusCode)
	require.Equal(t, 3, f.count(t, `events WHERE name = 'email_clicked'`))
}

func TestEveryRepeatCountsWhenTheWindowIsOff(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.TrackingKey = []byte(trackingKey); a.EngagementWindow = -1 })
	msg, contact := sentEmail(t, f)
	open := email.Tracker{Signer: email.Signer{Key: []byte(trackingKey)}, BaseURL: f.srv.URL}.URL(email.Claims{Kind: email.KindOpen, MessageID: msg, ContactID: contact})
	for i := 0; i < 3; i++ {
		require.Equal(t, 200, f.get(t, "GET", open).StatusCode)
	}
	require.Equal(t, 3, f.count(t, `events WHERE name = 'email_opened'`))
}

func TestExpiredLinksStillTakeTheReaderToTheLinkButRecordNothing(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.TrackingKey = []byte(trackingKey) })
	msg, contact := sentEmail(t, f)
	s := email.Signer{Key: []byte(trackingKey)}
	past := time.Now().Add(-time.Hour).Unix()
	link := func(c email.Claims) string { return f.srv.URL + "/v1/t/" + c.Kind + "/" + s.Sign(c) }

	resp := f.get(t, "GET", link(email.Claims{Kind: email.KindClick, MessageID: msg, ContactID: contact, URL: "https://shop.example.com/old", Expires: past}))
	require.Equal(t, 302, resp.StatusCode)
	require.Equal(t, "https://shop.example.com/old", resp.Header.Get("Location"))
	resp = f.get(t, "GET", link(email.Claims{Kind: email.KindOpen, MessageID: msg, ContactID: contact, Expires: past}))
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "image/gif", resp.Header.Get("Content-Type"))
	require.Zero(t, f.count(t, `events WHERE name IN ('email_opened', 'email_clicked')`))

	req := f.request(t, "POST", "/v1/t/u/"+s.Sign(email.Claims{Kind: email.KindUnsubscribe, MessageID: msg, ContactID: contact, Expires: past}), nil)
	r, _ := f.send(t, req)
	require.Equal(t, 410, r.Status)
	require.Equal(t, "token_expired", errorOf(t, r)["code"])
	require.Zero(t, f.count(t, `contacts WHERE unsubscribed_at IS NOT NULL`))

	// Links minted before tokens had an expiry carry none, and keep working.
	resp = f.get(t, "GET", link(email.Claims{Kind: email.KindClick, MessageID: msg, ContactID: contact, URL: "https://shop.example.com/old"}))
	require.Equal(t, 302, resp.StatusCode)
	require.Equal(t, 1, f.count(t, `events WHERE name = 'email_clicked'`))
	resp = f.get(t, "POST", link(email.Claims{Kind: email.KindUnsubscribe, MessageID: msg, ContactID: contact}))
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 1, f.count(t, `contacts WHERE unsubscribed_at IS NOT NULL`))
}
