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
	"strings"

	"golang.org/x/net/html"
)

// Token kinds: what a signed link is for.
const (
	KindOpen        = "o"
	KindClick       = "c"
	KindUnsubscribe = "u"
)

// Claims is what a tracking token says: which message, which contact, which URL.
type Claims struct {
	Kind      string `json:"k"`
	MessageID int64  `json:"m"`
	ContactID int64  `json:"c"`
	URL       string `json:"u,omitempty"`
}

// ErrBadToken is a token that does not verify: tampered, truncated, or signed with another key.
var ErrBadToken = errors.New("invalid or tampered token")

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

// Verify checks the signature and the kind and returns the claims.
func (s Signer) Verify(token, kind string) (Claims, error) {
	var c Claims
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(s.Key) == 0 {
		return c, ErrBadToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(p)) {
		return c, ErrBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Kind != kind {
		return c, ErrBadToken
	}
	return c, nil
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
}

// URL builds the endpoint URL for a token.
func (t Tracker) URL(c Claims) string {
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
