package starter

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// tooLarge is the 413 of a body over limit.
func tooLarge(limit int64, what string) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("request body is larger than %d bytes%s", limit, what)}
}

// readBody reads a request body of at most limit bytes, both as sent (raw, what a signature
// covers) and decoded: Content-Encoding gzip or deflate is undone with the same limit on what
// it decodes to, so a compression bomb costs the server limit bytes, not what it would
// expand to. A Content-Length over the limit is refused before a byte of the body is read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (raw, body []byte, err error) {
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		return nil, nil, tooLarge(limit, "")
	}
	coding, err := contentCoding(r.Header.Values("Content-Encoding"))
	if err != nil {
		return nil, nil, err
	}
	raw, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, nil, fmt.Errorf("read body: %w", err)
	}
	if coding == "" {
		return raw, raw, nil
	}
	var dec io.Reader
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, nil, badRequest("", "the body is not gzip data: %s", err)
		}
		dec = zr
	case "deflate":
		// HTTP's deflate is zlib-wrapped (RFC 9110), but many clients send bare deflate: a
		// zlib header is two bytes whose big-endian value is a multiple of 31, method 8.
		if len(raw) >= 2 && raw[0]&0x0f == 8 && (uint16(raw[0])<<8|uint16(raw[1]))%31 == 0 {
			zr, err := zlib.NewReader(bytes.NewReader(raw))
			if err != nil {
				return nil, nil, badRequest("", "the body is not deflate data: %s", err)
			}
			dec = zr
		} else {
			dec = flate.NewReader(bytes.NewReader(raw))
		}
	}
	body, err = io.ReadAll(io.LimitReader(dec, limit+1))
	if int64(len(body)) > limit {
		w.Header().Set("Connection", "close")
		return nil, nil, tooLarge(limit, " once decompressed")
	}
	if err != nil {
		return nil, nil, badRequest("", "the %s body is corrupt: %s", coding, err)
	}
	return raw, body, nil
}

// contentCoding reads Content-Encoding: none, gzip (x-gzip) or deflate; identity is none.
func contentCoding(values []string) (string, error) {
	coding := ""
	for _, v := range values {
		for _, c := range strings.Split(v, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity":
				continue
			case "x-gzip":
				c = "gzip"
			case "gzip", "deflate":
			default:
				return "", &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_encoding",
					Message: fmt.Sprintf("Content-Encoding %q is not supported: send gzip, deflate or an uncompressed body", c)}
			}
			if coding != "" {
				return "", &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_encoding",
					Message: "a body may have one Content-Encoding (gzip or deflate), not several"}
			}
			coding = c
		}
	}
	return coding, nil
}

// bodyWriteKey is the write key a body carries when the request has no Basic auth, as
// Segment's browser library sends it: "writeKey" in the JSON (a batch's, or its first
// message's), or a form field.
func bodyWriteKey(r *http.Request, body []byte, format bodyFormat) string {
	if format == formBody && !formIsJSON(r) {
		v, _ := url.ParseQuery(string(body))
		return v.Get("writeKey")
	}
	var b struct {
		WriteKey string `json:"writeKey"`
		Batch    []struct {
			WriteKey string `json:"writeKey"`
		} `json:"batch"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	if b.WriteKey == "" && len(b.Batch) > 0 {
		return b.Batch[0].WriteKey
	}
	return b.WriteKey
}

// CORS: browser pages post events from their own origin (Segment's analytics.js sends
// text/plain to spare a preflight; RudderStack's JS SDK sends Authorization and an
// AnonymousId header, which needs one). Ingestion is open to any origin: a write key is
// public by nature. Management endpoints send no CORS headers, so browsers keep other
// origins out of them.
const corsMaxAge = "86400"

// corsHeaders are the request headers a preflight may ask for: those Cairn reads, and
// harmless ones browser libraries add.
var corsHeaders = map[string]bool{
	"authorization": true, "content-type": true, "content-encoding": true,
	"accept": true, "accept-language": true, "content-language": true,
	"anonymousid": true, "x-requested-with": true,
}

// allowOrigin marks an ingestion response readable by the page that made the request.
func allowOrigin(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if origin := r.Header.Get("Origin"); origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	} else {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	h.Set("Access-Control-Expose-Headers", "Retry-After, X-RateLimit-Reset")
}

// preflight answers a CORS preflight for an ingestion endpoint that takes method. One that
// asks for another method (PUT /v1/forms/{id} is management, POST is ingestion) gets no CORS
// headers, so the browser keeps the page out.
func preflight(method string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked := r.Header.Get("Access-Control-Request-Method"); asked != "" && asked != method {
			writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found",
				Message: fmt.Sprintf("no endpoint %s %s for other origins", asked, r.URL.Path)})
			return
		}
		allowOrigin(w, r)
		h := w.Header()
		allowed := []string{"Authorization", "Content-Type", "Content-Encoding"}
		for _, v := range r.Header.Values("Access-Control-Request-Headers") {
			for _, name := range strings.Split(v, ",") {
				name = strings.ToLower(strings.TrimSpace(name))
				if corsHeaders[name] && name != "authorization" && name != "content-type" && name != "content-encoding" {
					allowed = append(allowed, name)
				}
			}
		}
		h.Set("Access-Control-Allow-Methods", method+", OPTIONS")
		h.Set("Access-Control-Allow-Headers", strings.Join(allowed, ", "))
		h.Set("Access-Control-Max-Age", corsMaxAge)
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		w.WriteHeader(http.StatusNoContent)
	})
}

// clientAddr is the address a request comes from, as the failed-authentication limit counts
// it: the connection's peer or, when that peer is a trusted proxy, the nearest address in
// X-Forwarded-For that is not. IPv6 clients count by their /64, which one host usually has
// whole.
func (a *API) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if a.trusted(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = hop.Unmap()
			if !a.trusted(addr) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func (a *API) trusted(addr netip.Addr) bool {
	for _, p := range a.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// failures limits failed authentications (unknown write keys, wrong admin keys, bad source
// signatures) per client address with a token bucket: a burst, then one more per refill.
// An address with no failure left is refused every authentication, right or wrong, until one
// refills, or guessing would go on at full speed with only the right answer let through.
type failures struct {
	mu      sync.Mutex
	perSec  float64
	burst   int
	buckets map[string]*rate.Limiter
}

// maxFailureAddrs bounds the addresses remembered; past it, full buckets (which remember
// nothing) are forgotten first.
const maxFailureAddrs = 10000

func newFailures(perMinute float64, burst int) *failures {
	if perMinute <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = 1
	}
	return &failures{perSec: perMinute / 60, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// blocked says whether addr has used up its failures, and how long until it may try again.
func (f *failures) blocked(addr string) (time.Duration, bool) {
	if f == nil {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.buckets[addr]
	if !ok {
		return 0, false
	}
	if tokens := b.Tokens(); tokens < 1 {
		return time.Duration((1 - tokens) / f.perSec * float64(time.Second)), true
	}
	return 0, false
}

// failed counts one failure of addr.
func (f *failures) failed(addr string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.buckets[addr]
	if !ok {
		if len(f.buckets) >= maxFailureAddrs {
			f.forget()
		}
		b = rate.NewLimiter(rate.Limit(f.perSec), f.burst)
		f.buckets[addr] = b
	}
	b.Allow()
}

// forget drops full buckets, then, if an attack from many addresses leaves none full, any
// tenth of them: memory stays bounded, at the price of some addresses starting afresh.
func (f *failures) forget() {
	for k, b := range f.buckets {
		if b.Tokens() >= float64(f.burst) {
			delete(f.buckets, k)
		}
	}
	for k := range f.buckets {
		if len(f.buckets) < maxFailureAddrs*9/10 {
			break
		}
		delete(f.buckets, k)
	}
}

// refuseAuth counts a failed authentication of the request's address and answers it.
func (a *API) refuseAuth(w http.ResponseWriter, addr string, err *apiError) {
	a.authFailures.failed(addr)
	writeError(w, err)
}

// tooManyFailures answers an address that has failed authentication too often.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	secs := retryAfter(w, wait)
	writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: "too_many_failures",
		Message: fmt.Sprintf("too many failed authentications from this address; retry in %ds", secs)})
}

// retryAfter sets Retry-After (and X-RateLimit-Reset, which Segment's browser library reads
// when it batches) to wait, in whole seconds, and returns them.
func retryAfter(w http.ResponseWriter, wait time.Duration) int {
	secs := int(math.Max(1, math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("X-RateLimit-Reset", strconv.Itoa(secs))
	return secs
}
