package starter_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/starter"
)

func compress(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "deflate": // zlib-wrapped, as RFC 9110 defines it
		w = zlib.NewWriter(&b)
	case "raw deflate": // what many clients send as deflate
		fw, err := flate.NewWriter(&b, flate.DefaultCompression)
		require.NoError(t, err)
		w = fw
	}
	_, err := w.Write(body)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func TestGzipAndDeflateBodiesAreDecompressedOnEveryIngestionEndpoint(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/forms/news", `{"fields": {"E-mail": "email"}}`, bearer(adminKey)).Status)
	cases := []struct{ coding, header, method, path, body string }{
		{"gzip", "gzip", "POST", "/v1/track", `{"userId":"ada","event":"Zipped"}`},
		{"gzip", "x-gzip", "POST", "/v1/identify", `{"userId":"ada","traits":{"plan":"pro"}}`},
		{"deflate", "deflate", "POST", "/v1/page", `{"userId":"ada","name":"Home"}`},
		{"raw deflate", "Deflate", "POST", "/v1/batch", `{"batch":[{"type":"track","userId":"ada","event":"Batched"}]}`},
		{"gzip", "gzip", "POST", "/v1/t", `{"userId":"ada","event":"Short"}`},
		{"gzip", "gzip", "POST", "/v1/forms/news", `{"E-mail":"bo@example.com"}`},
		{"deflate", "deflate", "PUT", "/v1/deals/d-1", `{"userId":"ada","pipeline":"sales","stage":"lead"}`},
	}
	for _, c := range cases {
		req := f.request(t, c.method, c.path, bytes.NewReader(compress(t, c.coding, []byte(c.body))))
		req.Header.Set("Content-Encoding", c.header)
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(writeKey, "")
		r, _ := f.send(t, req)
		require.Equal(t, 200, r.Status, "%s %s (%s): %v", c.method, c.path, c.coding, r.Body)
	}
	require.Equal(t, 1, f.count(t, `events WHERE name = 'Zipped'`))
	require.Equal(t, 1, f.count(t, `events WHERE name = 'Batched'`))
	require.Equal(t, 1, f.count(t, `events WHERE name = 'Short'`))
	require.Equal(t, 1, f.count(t, `events WHERE name = 'form_submitted'`))
	require.Equal(t, 1, f.count(t, `events WHERE name = 'deal_stage_changed'`))
}

func TestABodyThatDecompressesPastTheLimitIs413AndStoresNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// 600 KiB of JSON that compresses to a few KiB: under the limit as sent, over it decoded.
	body := `{"userId":"ada","event":"x","properties":{"blob":"` + strings.Repeat("a", 600<<10) + `"}}`
	zipped := compress(t, "gzip", []byte(body))
	require.Less(t, len(zipped), 10<<10)
	req := f.request(t, "POST", "/v1/track", bytes.NewReader(zipped))
	req.Header.Set("Content-Encoding", "gzip")
	req.SetBasicAuth(writeKey, "")
	r, _ := f.send(t, req)
	require.Equal(t, 413, r.Status)
	e := errorOf(t, r)
	require.Equal(t, "body_too_large", e["code"])
	require.Contains(t, e["message"], "524288 bytes once decompressed")
	f.nothingStored(t)
}

func TestUnknownOrStackedContentEncodingsAre415AndCorruptOnesAre400(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, c := range []struct {
		coding string
		body   []byte
		status int
		says   string
	}{
		{"br", []byte(`{"userId":"ada","event":"x"}`), 415, `Content-Encoding "br" is not supported`},
		{"gzip, deflate", compress(t, "gzip", []byte(`{}`)), 415, "one Content-Encoding"},
		{"gzip", []byte(`{"userId":"ada","event":"x"}`), 400, "not gzip data"},
		{"gzip", compress(t, "gzip", []byte(`{"userId":"ada","event":"x"}`))[:20], 400, "corrupt"},
	} {
		req := f.request(t, "POST", "/v1/track", bytes.NewReader(c.body))
		req.Header.Set("Content-Encoding", c.coding)
		req.SetBasicAuth(writeKey, "")
		r, _ := f.send(t, req)
		require.Equal(t, c.status, r.Status, c.coding)
		require.Contains(t, errorOf(t, r)["message"], c.says)
	}
	f.nothingStored(t)
}

// TestATenMebibyteBodyGets413JSONBeforeAnyOfItIsRead sends what curl sends for a large body:
// headers with Expect: 100-continue, the body only once the server asks for it. A server that
// reads before it checks says "100 Continue", takes half a megabyte, answers and closes on
// the rest, and the client sees a reset. The starter answers 413 at once.
func TestATenMebibyteBodyGets413JSONBeforeAnyOfItIsRead(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.SourceSecrets = map[string]string{"shop": "s3cret"} })
	const size = 10 << 20
	for _, c := range []struct{ method, path, auth string }{
		{"POST", "/v1/track", "Basic " + base64.StdEncoding.EncodeToString([]byte(writeKey+":"))},
		{"POST", "/v1/sources/shop/events", ""},
		{"PUT", "/v1/journeys/big", "Bearer " + adminKey},
	} {
		conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: cairn\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", c.method, c.path, c.auth, size)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, c.path)
		raw, _ := io.ReadAll(resp.Body)
		conn.Close()
		require.Equal(t, 413, resp.StatusCode, "%s answers before asking for the body: %s", c.path, raw)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Contains(t, string(raw), `"code":"body_too_large"`)
	}

	// A client that sends the body straight away gets the same answer and a closed connection.
	req := f.request(t, "POST", "/v1/track", bytes.NewReader(bytes.Repeat([]byte("a"), size)))
	req.SetBasicAuth(writeKey, "")
	r, resp := f.send(t, req)
	require.Equal(t, 413, r.Status)
	require.Equal(t, "body_too_large", errorOf(t, r)["code"])
	require.True(t, resp.Close, "the connection is not kept for the rest of the body")
	f.nothingStored(t)
}

// TestGzipBombsAreRefusedWithoutTheProcessGrowing streams gzips of zeros, generated as they
// are sent and never held: 1 GB (whose first half megabyte as sent is already over the limit)
// and 256 MB (a quarter megabyte as sent, under it: refused once half a megabyte is
// decoded). It watches the heap meanwhile, and does not run in parallel, so the heap it
// watches is its own.
func TestGzipBombsAreRefusedWithoutTheProcessGrowing(t *testing.T) {
	f := setup(t)
	bomb := func(size int) (io.Reader, *atomic.Int64) {
		pr, pw := io.Pipe()
		var sent atomic.Int64
		go func() {
			zw, _ := gzip.NewWriterLevel(pw, gzip.BestCompression)
			zeros := make([]byte, 1<<20)
			for sent.Load() < int64(size) {
				if _, err := zw.Write(zeros); err != nil {
					pw.CloseWithError(err)
					return
				}
				sent.Add(int64(len(zeros)))
			}
			pw.CloseWithError(zw.Close())
		}()
		return pr, &sent
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	for _, c := range []struct {
		size int
		says string
	}{{1 << 30, "larger than 524288 bytes"}, {256 << 20, "524288 bytes once decompressed"}} {
		body, sent := bomb(c.size)
		req := f.request(t, "POST", "/v1/track", body)
		req.Header.Set("Content-Encoding", "gzip")
		req.SetBasicAuth(writeKey, "")
		r, _ := f.send(t, req)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
		require.Equal(t, "body_too_large", errorOf(t, r)["code"])
		require.Contains(t, errorOf(t, r)["message"], c.says)
		if c.size == 1<<30 {
			require.Less(t, sent.Load(), int64(c.size), "the starter stopped reading long before the end")
		}
	}
	close(done)
	grown := int64(peak.Load()) - int64(before.HeapInuse)
	require.Less(t, grown, int64(100<<20), "heap grew by %d MB", grown>>20)
	t.Logf("heap grew by at most %d KB", grown>>10)
	f.nothingStored(t)
}
