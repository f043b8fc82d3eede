package email

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/html"

	"github.com/cairnhq/cairn/journey"
)

// Token kinds: what a signed link is for.
const (
	KindOpen        = "o"
	KindClick       = "c"
	KindUnsubscribe = "u"
)

// Claims is what a tracking token says: which message, which contact, which URL, and until
// when it counts.
type Claims struct {
	Kind      string `json:"k"`
	MessageID int64  `json:"m"`
	ContactID int64  `json:"c"`
	URL       string `json:"u,omitempty"`
	// Expires is a Unix time in seconds; 0 (tokens minted before expiry existed, or of a kind
	// that never expires) is never.
	Expires int64 `json:"x,omitempty"`
}

// Errors of Verify. An expired token is genuine: Verify returns its claims with
// ErrTokenExpired, so that a click can still take the recipient to its link.
var (
	ErrBadToken     = errors.New("invalid or tampered token")
	ErrTokenExpired = errors.New("expired token")
)

// Expiry says how long links of each kind stay valid after they are minted; 0 is never.
type Expiry struct {
	Open, Click, Unsubscribe time.Duration
}

// DefaultExpiry is what CAIRN_TRACKING_*_TTL default to: an open pixel a year (mail read
// later than that is rare, and a forwarded message must not keep counting opens), a click
// five years (people keep and search old mail; the link must still work), and an
// unsubscribe link never (it must always work).
var DefaultExpiry = Expiry{Open: 365 * 24 * time.Hour, Click: 5 * 365 * 24 * time.Hour}

// ExpiryFromEnv reads CAIRN_TRACKING_OPEN_TTL, CAIRN_TRACKING_CLICK_TTL and
// CAIRN_TRACKING_UNSUBSCRIBE_TTL (journey durations such as 365d; "0" is never), defaulting
// to DefaultExpiry.
func ExpiryFromEnv() (Expiry, error) {
	e := DefaultExpiry
	for _, v := range []struct {
		name string
		to   *time.Duration
	}{{"CAIRN_TRACKING_OPEN_TTL", &e.Open}, {"CAIRN_TRACKING_CLICK_TTL", &e.Click}, {"CAIRN_TRACKING_UNSUBSCRIBE_TTL", &e.Unsubscribe}} {
		s := strings.TrimSpace(os.Getenv(v.name))
		switch s {
		case "":
			continue
		case "0":
			*v.to = 0
			continue
		}
		d, err := journey.ParseDuration(s)
		if err != nil {
			return e, fmt.Errorf("%s: %w", v.name, err)
		}
		*v.to = d.D
	}
	return e, nil
}

func (e Expiry) of(kind string) time.Duration {
	switch kind {
	case KindOpen:
		return e.Open
	case KindClick:
		return e.Click
	case KindUnsubscribe:
		return e.Unsubscribe
	}
	return 0
}

// Signer mints and verifies tracking tokens with an HMAC key.
type Signer struct {
	Key []byte
}

// Sign returns payload.signature, both base64url.
func (s Signer) Sign(c Claims) string {
	payload, _ := json.Marshal(c)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(p))
}

// Verify checks the signature and the kind and returns the claims; past their expiry (at
// now), it returns them with ErrTokenExpired. A token verifies only in the one spelling Sign
// gives it: base64 decoders accept other spellings of the same bytes (spare low bits in the
// last character, line breaks), so each part must encode back to exactly what was received.
func (s Signer) Verify(token, kind string, now time.Time) (Claims, error) {
	var c Claims
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(s.Key) == 0 {
		return c, ErrBadToken
	}
	got, err := canonical(sig)
	if err != nil || !hmac.Equal(got, s.mac(p)) {
		return c, ErrBadToken
	}
	raw, err := canonical(p)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Kind != kind {
		return Claims{}, ErrBadToken
	}
	if c.Expires != 0 && now.Unix() >= c.Expires {
		return c, ErrTokenExpired
	}
	return c, nil
}

// canonical decodes base64url without padding, refusing any spelling but the canonical one.
func canonical(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != s {
		return nil, ErrBadToken
	}
	return b, nil
}

func (s Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Tracker rewrites a message's links through the starter's click endpoint and adds an open
// pixel and an unsubscribe link, all signed.
type Tracker struct {
	Signer
	// BaseURL is the starter's public URL (CAIRN_PUBLIC_URL), e.g. https://cairn.example.com.
	BaseURL string
	// Expiry is signed into each token (CAIRN_TRACKING_*_TTL); the zero value never expires.
	Expiry Expiry
}

// URL builds the endpoint URL for a token, which expires Expiry after now.
func (t Tracker) URL(c Claims) string {
	if ttl := t.Expiry.of(c.Kind); ttl > 0 && c.Expires == 0 {
		c.Expires = time.Now().Add(ttl).Unix()
	}
	return strings.TrimRight(t.BaseURL, "/") + "/v1/t/" + c.Kind + "/" + t.Sign(c)
}

// Apply rewrites every http(s) link of the HTML part, appends the pixel, and sets the
// unsubscribe URL; the text part gets the unsubscribe URL at its end.
func (t Tracker) Apply(m *Message, messageID, contactID int64) error {
	m.Unsubscribe = t.URL(Claims{Kind: KindUnsubscribe, MessageID: messageID, ContactID: contactID})
	if m.Text != "" {
		m.Text = strings.TrimRight(m.Text, "\n") + "\n\n--\nUnsubscribe: " + m.Unsubscribe + "\n"
	}
	if m.HTML == "" {
		return nil
	}
	doc, err := html.Parse(strings.NewReader(m.HTML))
	if err != nil {
		return fmt.Errorf("parse html: %w", err)
	}
	var body *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			for i, a := range n.Attr {
				if a.Key != "href" {
					continue
				}
				if u, err := url.Parse(a.Val); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
					n.Attr[i].Val = t.URL(Claims{Kind: KindClick, MessageID: messageID, ContactID: contactID, URL: a.Val})
				}
			}
		}
		if n.Type == html.ElementNode && n.Data == "body" {
			body = n
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if body != nil {
		body.AppendChild(&html.Node{Type: html.ElementNode, Data: "p", FirstChild: nil})
		p := body.LastChild
		link := &html.Node{Type: html.ElementNode, Data: "a", Attr: []html.Attribute{{Key: "href", Val: m.Unsubscribe}}}
		link.AppendChild(&html.Node{Type: html.TextNode, Data: "Unsubscribe"})
		p.AppendChild(link)
		body.AppendChild(&html.Node{Type: html.ElementNode, Data: "img", Attr: []html.Attribute{
			{Key: "src", Val: t.URL(Claims{Kind: KindOpen, MessageID: messageID, ContactID: contactID})},
			{Key: "width", Val: "1"}, {Key: "height", Val: "1"}, {Key: "alt", Val: ""},
		}})
	}
	var b bytes.Buffer
	if err := html.Render(&b, doc); err != nil {
		return fmt.Errorf("render html: %w", err)
	}
	m.HTML = b.String()
	return nil
}
