package starter_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// browserPost posts as Segment's browser library does: JSON as text/plain (no preflight),
// the write key inside the body, no Authorization header.
func (f *fixture) browserPost(t *testing.T, path, body string) (reply, *http.Response) {
	t.Helper()
	req := f.request(t, "POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", "https://shop.example.com")
	return f.send(t, req)
}

func TestSegmentsBrowserShortPathsReachTheSameCallsWithTheWriteKeyInTheBody(t *testing.T) {
	t.Parallel()
	f := setup(t)
	meta := `"writeKey":"` + writeKey + `","sentAt":"2026-11-26T10:00:05.000Z","_metadata":{"bundled":["Segment.io"],"unbundled":[]},
		"context":{"library":{"name":"analytics.js","version":"next-1.70.0"},"page":{"path":"/pricing","url":"https://shop.example.com/pricing"},"userAgent":"Mozilla/5.0","locale":"en-GB"},
		"integrations":{},"timestamp":"2026-11-26T10:00:00.000Z"`
	for path, body := range map[string]string{
		"/v1/p": `{"type":"page","anonymousId":"v-1","name":"Pricing","properties":{"path":"/pricing"},"messageId":"ajs-1",` + meta + `}`,
		"/v1/i": `{"type":"identify","userId":"ada","anonymousId":"v-1","traits":{"email":"ada@example.com"},"messageId":"ajs-2",` + meta + `}`,
		"/v1/t": `{"type":"track","userId":"ada","event":"Plan Chosen","properties":{"plan":"pro"},"messageId":"ajs-3",` + meta + `}`,
		"/v1/s": `{"type":"screen","userId":"ada","name":"Home","messageId":"ajs-4",` + meta + `}`,
		"/v1/g": `{"type":"group","userId":"ada","groupId":"acme","traits":{"name":"Acme"},"messageId":"ajs-5",` + meta + `}`,
		"/v1/a": `{"type":"alias","userId":"ada","previousId":"v-2","messageId":"ajs-6",` + meta + `}`,
	} {
		r, resp := f.browserPost(t, path, body)
		require.Equal(t, 200, r.Status, "%s: %v", path, r.Body)
		require.Equal(t, "https://shop.example.com", resp.Header.Get("Access-Control-Allow-Origin"), path)
	}
	// The batching strategy posts {writeKey, batch, sentAt} to /v1/b.
	r, _ := f.browserPost(t, "/v1/b", `{"writeKey":"`+writeKey+`","sentAt":"2026-11-26T10:00:09.000Z","batch":[
		{"type":"track","userId":"ada","event":"Batched A","messageId":"ajs-7","writeKey":"`+writeKey+`"},
		{"type":"track","userId":"ada","event":"Batched B","messageId":"ajs-8","writeKey":"`+writeKey+`"}]}`)
	require.Equal(t, 200, r.Status, "%v", r.Body)

	for name, want := range map[string]int{"page": 1, "identify": 1, "Plan Chosen": 1, "screen": 1, "group": 1, "alias": 1, "Batched A": 1, "Batched B": 1} {
		require.Equal(t, want, f.count(t, `events WHERE name = '`+name+`'`), name)
	}
	require.Zero(t, f.count(t, `events WHERE properties ? 'writeKey' OR properties::text LIKE '%`+writeKey+`%'`), "the write key is never stored")
	var plan string
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT properties->>'plan' FROM events WHERE name = 'Plan Chosen'`).Scan(&plan))
	require.Equal(t, "pro", plan)
}

func TestAWriteKeyInTheBodyIsCheckedLikeOneInBasicAuth(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r, _ := f.browserPost(t, "/v1/t", `{"writeKey":"wk_guess","userId":"ada","event":"x"}`)
	require.Equal(t, 401, r.Status)
	require.Contains(t, errorOf(t, r)["message"], "unknown write key")
	r, _ = f.browserPost(t, "/v1/t", `{"userId":"ada","event":"x"}`)
	require.Equal(t, 401, r.Status)
	require.Contains(t, errorOf(t, r)["message"], "writeKey in the body")
	r, _ = f.browserPost(t, "/v1/b", `{"batch":[{"type":"track","userId":"ada","event":"x","writeKey":"wk_guess"}]}`)
	require.Equal(t, 401, r.Status, "a batch's first message's key is checked too")
	// Basic auth, when given, is the key: a body's writeKey does not override it.
	req := f.request(t, "POST", "/v1/track", strings.NewReader(`{"writeKey":"`+writeKey+`","userId":"ada","event":"x"}`))
	req.SetBasicAuth("wk_guess", "")
	r, _ = f.send(t, req)
	require.Equal(t, 401, r.Status)
	f.nothingStored(t)

	// A plain HTML form may carry it as a field; it is not stored as one.
	require.Equal(t, 201, f.do(t, "PUT", "/v1/forms/news", `{"fields": {"E-mail": "email"}}`, bearer(adminKey)).Status)
	req = f.request(t, "POST", "/v1/forms/news", strings.NewReader("E-mail=ada%40example.com&writeKey="+writeKey))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, _ = f.send(t, req)
	require.Equal(t, 200, r.Status, "%v", r.Body)
	req = f.request(t, "POST", "/v1/forms/news", strings.NewReader(`{"E-mail":"bo@example.com","writeKey":"`+writeKey+`"}`))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	r, _ = f.send(t, req)
	require.Equal(t, 200, r.Status, "JSON sent as text/plain: %v", r.Body)
	require.Zero(t, f.count(t, `contacts WHERE traits ? 'writeKey'`))
}

func TestIngestionAnswersCORSPreflightsAndManagementDoesNot(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for path, method := range map[string]string{"/v1/track": "POST", "/v1/t": "POST", "/v1/batch": "POST", "/v1/forms/news": "POST", "/v1/deals/d-1": "PUT"} {
		req := f.request(t, "OPTIONS", path, nil)
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "content-type, authorization, anonymousid, x-debug-token")
		resp, err := f.srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 204, resp.StatusCode, path)
		h := resp.Header
		require.Equal(t, "https://shop.example.com", h.Get("Access-Control-Allow-Origin"), path)
		require.Equal(t, method+", OPTIONS", h.Get("Access-Control-Allow-Methods"), path)
		allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
		for _, want := range []string{"authorization", "content-type", "content-encoding", "anonymousid"} {
			require.Contains(t, allowed, want, path)
		}
		require.NotContains(t, allowed, "x-debug-token", "only the headers Cairn knows are allowed")
		require.Equal(t, "86400", h.Get("Access-Control-Max-Age"))
	}

	// Actual responses, errors included, are readable by the page; without an Origin, by any.
	r, resp := f.browserPost(t, "/v1/track", `{"writeKey":"wk_guess","userId":"ada","event":"x"}`)
	require.Equal(t, 401, r.Status)
	require.Equal(t, "https://shop.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After")
	req := f.request(t, "POST", "/v1/track", strings.NewReader(`{"userId":"ada","event":"x"}`))
	req.SetBasicAuth(writeKey, "")
	_, resp = f.send(t, req)
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))

	// Management endpoints: no preflight answer, no CORS header on their replies.
	for _, path := range []string{"/v1/journeys/welcome", "/v1/contacts/ada", "/v1/segments/s", "/v1/forms/news"} {
		req := f.request(t, "OPTIONS", path, nil)
		req.Header.Set("Origin", "https://evil.example.com")
		req.Header.Set("Access-Control-Request-Method", "PUT")
		resp, err := f.srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.NotEqual(t, 204, resp.StatusCode, path)
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), path)
	}
	req = f.request(t, "GET", "/v1/journeys/welcome", nil)
	req.Header.Set("Origin", "https://evil.example.com")
	req.Header.Set("Authorization", "Bearer "+adminKey)
	_, resp = f.send(t, req)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// TestRudderStacksGoClientRequestIsAccepted sends what github.com/rudderlabs/analytics-go/v4
// (4.2.3) sends, byte for byte in shape: the module proxy does not serve that module here, so
// the request is rebuilt from its source: a gzip (BestSpeed) body {"batch": [...]}, Basic
// auth with the write key, Content-Type application/json, its User-Agent and RS-* headers,
// and messages with originalTimestamp and sentAt (set to the same time) instead of timestamp,
// channel "server", a generated anonymousId beside the userId.
func TestRudderStacksGoClientRequestIsAccepted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	ts := at.Format(time.RFC3339Nano)
	body := `{"batch":[` +
		`{"messageId":"6b3c2ad4-rs-1","anonymousId":"5f1b0e2c-anon","userId":"ada","event":"Order Completed","originalTimestamp":"` + ts + `","sentAt":"` + ts + `",` +
		`"context":{"library":{"name":"analytics-go","version":"4.2.3"}},"properties":{"order_id":"o-1","total":42},"type":"track","channel":"server"},` +
		`{"messageId":"6b3c2ad4-rs-2","userId":"ada","originalTimestamp":"` + ts + `","sentAt":"` + ts + `",` +
		`"context":{"library":{"name":"analytics-go","version":"4.2.3"}},"traits":{"email":"ada@example.com"},"type":"identify","channel":"server"}]}`
	var zipped bytes.Buffer
	zw, err := gzip.NewWriterLevel(&zipped, gzip.BestSpeed)
	require.NoError(t, err)
	_, err = zw.Write([]byte(body))
	require.NoError(t, err)
	require.NoError(t, zw.Close())

	req := f.request(t, "POST", "/v1/batch", &zipped)
	req.Header.Add("Content-Encoding", "gzip")
	req.Header.Add("User-Agent", "analytics-go (version: 4.2.3)")
	req.Header.Add("Content-Type", "application/json")
	req.Header.Add("RS-targetNode", "0")
	req.Header.Add("RS-nodeCount", "1")
	req.Header.Add("RS-userAgent", "serverSDK")
	req.SetBasicAuth(writeKey, "")
	r, _ := f.send(t, req)
	require.Equal(t, 200, r.Status, "%v", r.Body)

	var email string
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT email FROM contacts WHERE external_id = 'ada'`).Scan(&email))
	require.Equal(t, "ada@example.com", email)
	var occurred time.Time
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT occurred_at FROM events WHERE name = 'Order Completed'`).Scan(&occurred))
	require.WithinDuration(t, time.Now(), occurred, 5*time.Second,
		"sentAt equal to originalTimestamp: RudderStack's own rule stamps the event when received")

	// Without sentAt, originalTimestamp is the event's time.
	r = f.do(t, "POST", "/v1/track", `{"userId":"bo","event":"Late","originalTimestamp":"`+ts+`"}`, basic(writeKey))
	require.Equal(t, 200, r.Status)
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT occurred_at FROM events WHERE name = 'Late'`).Scan(&occurred))
	require.WithinDuration(t, at, occurred, time.Millisecond)
}
