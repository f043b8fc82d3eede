package starter

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/crm"
)

// SignatureHeader carries a signing source's signature: t=<unix seconds>,v1=<hex HMAC-SHA256
// of "<t>.<body>" with the source's secret>.
const SignatureHeader = "X-Cairn-Signature"

// signatureTolerance bounds how old (or early) a signed request may be: a captured request
// cannot be replayed later (and within the window, messageId dedupes it).
const signatureTolerance = 5 * time.Minute

// Sign computes the header value for body at t, as a source would (exported for tests and
// for sources written in Go).
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// signed guards /v1/sources/{source}/...: the body must carry a valid signature of that
// source's secret within the tolerance. Write keys are not accepted here. The signature
// covers the body as sent (before any Content-Encoding is undone); a bad one counts as a
// failed authentication of the client's address, as a wrong key does.
func (a *API) signed(h handlerFunc, limits []limit) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := a.clientAddr(r)
		if wait, blocked := a.authFailures.blocked(addr); blocked {
			tooManyFailures(w, wait)
			return
		}
		if err := checkURL(r); err != nil {
			writeError(w, err)
			return
		}
		source := r.PathValue("source")
		secret, ok := a.SourceSecrets[source]
		if !ok {
			writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no signing source %q", source)})
			return
		}
		if ok, wait := a.limits.allow("source:" + source); !ok {
			tooMany(w, wait)
			return
		}
		raw, body, err := readBody(w, r, maxIngestBody)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if err := verifySignature(secret, r.Header.Get(SignatureHeader), raw, a.Now()); err != nil {
			a.refuseAuth(w, addr, &apiError{Status: http.StatusUnauthorized, Code: "bad_signature", Message: err.Error()})
			return
		}
		if err := checkBody(r, body, jsonBody, limits); err != nil {
			writeError(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.serve(w, r, h)
	})
}

func verifySignature(secret, header string, body []byte, now time.Time) error {
	if header == "" {
		return fmt.Errorf("missing %s header", SignatureHeader)
	}
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("%s must look like t=<unix seconds>,v1=<hex signature>", SignatureHeader)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > signatureTolerance || d < -signatureTolerance {
		return fmt.Errorf("signature timestamp is %s away from now (tolerance %s)", d.Round(time.Second), signatureTolerance)
	}
	want := Sign(secret, time.Unix(sec, 0), body)
	if !hmac.Equal([]byte(want), []byte("t="+ts+",v1="+sig)) {
		return fmt.Errorf("signature does not match the body")
	}
	return nil
}

// sourceEvent accepts one Segment-shaped message (type defaults to track) from a signing source.
func (a *API) sourceEvent(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeMessage(r)
	if err != nil {
		return err
	}
	if m.Type == "" {
		m.Type = "track"
	}
	if !segmentTypes[m.Type] {
		return badRequest("type", "%q is not a Segment call type", m.Type)
	}
	in, err := m.event(a.Now(), "")
	if err != nil {
		return err
	}
	in.Source = "source:" + r.PathValue("source")
	if m.MessageID != "" {
		in.DedupeKey = in.Source + ":" + m.MessageID
	}
	return a.recordAll(w, r, []crm.EventInput{in})
}
