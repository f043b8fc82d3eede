package starter_test

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
)

// serve runs the API on the server the starter runs in production, with short timeouts.
func serve(t *testing.T, timeouts starter.HTTPTimeouts) (addr string, f *fixture) {
	t.Helper()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(t.Context(), pool))
	api := &starter.API{DB: pool, WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: discard()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := starter.NewHTTPServer(api.Handler(), timeouts)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), &fixture{ctx: t.Context(), store: pool}
}

var basicHeader = "Basic " + base64.StdEncoding.EncodeToString([]byte(writeKey+":"))

// trickle writes s one byte every interval until it is written or the connection fails.
func trickle(conn net.Conn, s string, interval time.Duration) {
	for i := 0; i < len(s); i++ {
		if _, err := conn.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(interval)
	}
}

// closedByServer tells a read that ended because the server closed the connection (cleanly,
// or with a reset when it left bytes unread) from one that hit the test's own deadline.
func closedByServer(err error) bool {
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func TestASlowClientIsCutAtTheReadTimeouts(t *testing.T) {
	t.Parallel()
	addr, f := serve(t, starter.HTTPTimeouts{ReadHeader: time.Second, Read: 2 * time.Second})

	// Headers at once, then the body at a byte a second: 408 at the read timeout.
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	body := `{"userId":"ada","event":"slow"}`
	start := time.Now()
	_, err = fmt.Fprintf(conn, "POST /v1/track HTTP/1.1\r\nHost: cairn\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", basicHeader, len(body))
	require.NoError(t, err)
	go trickle(conn, body, time.Second)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "%s", raw)
	require.Contains(t, string(raw), `"code":"request_timeout"`)
	require.InDelta(t, 2, took.Seconds(), 1, "cut at the 2 s read timeout, after %s", took)

	// Headers at a byte a second: the connection is closed at the header timeout.
	conn2, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn2.Close()
	start = time.Now()
	go trickle(conn2, "POST /v1/track HTTP/1.1\r\nHost: cairn\r\n\r\n", time.Second)
	require.NoError(t, conn2.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(conn2)
	took = time.Since(start)
	require.True(t, closedByServer(err), "the server closed the connection: %v", err)
	require.InDelta(t, 1, took.Seconds(), 1, "cut at the 1 s header timeout, after %s", took)
	require.Zero(t, f.count(t, "events"))
}

func TestTwoHundredSlowConnectionsDoNotStopNormalRequests(t *testing.T) {
	t.Parallel()
	addr, f := serve(t, starter.HTTPTimeouts{ReadHeader: 2 * time.Second, Read: 3 * time.Second})
	const slow = 200
	var closed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < slow; i++ {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			go trickle(conn, "POST /v1/track HTTP/1.1\r\nHost: cairn\r\nAuthorization: "+basicHeader+"\r\n\r\n", time.Second)
			_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			if _, err := io.ReadAll(conn); closedByServer(err) {
				closed.Add(1)
			}
		}()
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < 20; i++ {
		req, err := http.NewRequest("POST", "http://"+addr+"/v1/track", strings.NewReader(`{"userId":"ada","event":"normal","messageId":"n-`+strconv.Itoa(i)+`"}`))
		require.NoError(t, err)
		req.SetBasicAuth(writeKey, "")
		began := time.Now()
		resp, err := client.Do(req)
		require.NoError(t, err, "request %d while %d connections trickle", i, slow)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		require.Less(t, time.Since(began), time.Second)
	}
	wg.Wait()
	require.Equal(t, int64(slow), closed.Load(), "every slow connection was closed by the server")
	require.Less(t, time.Since(start), 8*time.Second)
	require.Equal(t, 20, f.count(t, `events WHERE name = 'normal'`))
}

func TestFailedAuthenticationsFromOneAddressGet429AfterABurst(t *testing.T) {
	t.Parallel()
	loopback := netip.MustParsePrefix("127.0.0.1/32")
	f := setupWith(t, func(a *starter.API) {
		a.AuthFailuresPerMinute, a.AuthFailureBurst = 6, 5
		a.TrustedProxies = []netip.Prefix{loopback} // the test's requests arrive "through a proxy"
		a.SourceSecrets = map[string]string{"shop": "s3cret"}
	})
	from := func(addr string, req *http.Request) *http.Request {
		req.Header.Set("X-Forwarded-For", "10.9.8.7, "+addr) // the nearest hop is the client
		return req
	}
	admin := func(addr, key string) (reply, *http.Response) {
		req := from(addr, f.request(t, "GET", "/v1/fields", nil))
		req.Header.Set("Authorization", "Bearer "+key)
		return f.send(t, req)
	}

	statuses := map[int]int{}
	for i := 0; i < 50; i++ {
		r, resp := admin("198.51.100.7", "ak_guess_"+strconv.Itoa(i))
		statuses[r.Status]++
		if r.Status == 429 {
			require.Equal(t, "too_many_failures", errorOf(t, r)["code"])
			secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			require.NoError(t, err)
			require.InDelta(t, 10, secs, 1, "one failure is forgiven every 10 s")
		}
	}
	require.Equal(t, map[int]int{403: 5, 429: 45}, statuses)
	r, _ := admin("198.51.100.7", adminKey)
	require.Equal(t, 429, r.Status, "even the right key waits: guessing must not go on at full speed")
	r, _ = admin("203.0.113.9", adminKey)
	require.Equal(t, 200, r.Status, "another address is not affected")

	// Unknown write keys and bad source signatures count the same way.
	for i := 0; i < 5; i++ {
		req := from("203.0.113.10", f.request(t, "POST", "/v1/track", strings.NewReader(`{"userId":"ada","event":"x"}`)))
		req.SetBasicAuth("wk_guess", "")
		r, _ = f.send(t, req)
		require.Equal(t, 401, r.Status)
	}
	req := from("203.0.113.10", f.request(t, "POST", "/v1/sources/shop/events", strings.NewReader(`{"userId":"ada","event":"x"}`)))
	req.Header.Set(starter.SignatureHeader, "t=1,v1=00")
	r, _ = f.send(t, req)
	require.Equal(t, 429, r.Status)

	// A missing key is no guess, and does not count.
	for i := 0; i < 10; i++ {
		r, _ = f.send(t, from("203.0.113.11", f.request(t, "GET", "/v1/fields", nil)))
		require.Equal(t, 401, r.Status)
	}
	require.Zero(t, f.count(t, "events"))
}

func TestXForwardedForIsIgnoredFromUntrustedPeers(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.AuthFailuresPerMinute, a.AuthFailureBurst = 6, 3 })
	for i := 0; i < 4; i++ {
		req := f.request(t, "GET", "/v1/fields", nil)
		req.Header.Set("Authorization", "Bearer ak_guess")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i)) // a new address each time, made up
		r, _ := f.send(t, req)
		if i < 3 {
			require.Equal(t, 403, r.Status)
		} else {
			require.Equal(t, 429, r.Status, "the peer's own address counts")
		}
	}
}
