// Package mailcatcher is a local SMTP server that keeps every message it receives and shows
// them on a web page: `dev` points Cairn's SMTP settings at it, and tests read what was sent.
package mailcatcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one caught email.
type Message struct {
	ID       int               `json:"id"`
	From     string            `json:"from"`
	To       []string          `json:"to"`
	Subject  string            `json:"subject"`
	Headers  map[string]string `json:"headers"`
	Text     string            `json:"text"`
	HTML     string            `json:"html"`
	Raw      string            `json:"-"`
	Received time.Time         `json:"received"`
}

// Catcher is a running SMTP server with its message store.
type Catcher struct {
	// Reject, when set, refuses recipients for which it returns true with a permanent
	// 550 reply, as a real server refuses an unknown mailbox.
	Reject func(to string) bool

	mu       sync.Mutex
	messages []Message
	changed  chan struct{}
	srv      *smtp.Server
	addr     string
}

// Start listens for SMTP on addr ("127.0.0.1:0" for any free port).
func Start(addr string) (*Catcher, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mail catcher: listen on %s: %w", addr, err)
	}
	c := &Catcher{changed: make(chan struct{}), addr: l.Addr().String()}
	c.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{c: c}, nil }))
	c.srv.Domain = "cairn-dev"
	c.srv.AllowInsecureAuth = true
	c.srv.MaxMessageBytes = 10 << 20
	go c.srv.Serve(l)
	return c, nil
}

// Addr is the SMTP host:port.
func (c *Catcher) Addr() string { return c.addr }

// Close stops the server.
func (c *Catcher) Close() error { return c.srv.Close() }

// Messages returns what has been caught, oldest first.
func (c *Catcher) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.messages...)
}

// Changed is closed (and replaced) whenever a message arrives.
func (c *Catcher) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Catcher) add(m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.ID = len(c.messages) + 1
	c.messages = append(c.messages, m)
	close(c.changed)
	c.changed = make(chan struct{})
}

type session struct {
	c    *Catcher
	from string
	to   []string
}

func (s *session) AuthPlain(string, string) error              { return nil }
func (s *session) Reset()                                      { s.from, s.to = "", nil }
func (s *session) Logout() error                               { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.c.Reject != nil && s.c.Reject(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox: " + to}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: s.from, To: s.to, Raw: string(raw), Received: time.Now(), Headers: map[string]string{}}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		for k, v := range parsed.Header {
			m.Headers[k] = strings.Join(v, ", ")
		}
		dec := new(mime.WordDecoder)
		if subj, err := dec.DecodeHeader(parsed.Header.Get("Subject")); err == nil {
			m.Subject = subj
		}
		readPart(parsed.Header.Get("Content-Type"), parsed.Header.Get("Content-Transfer-Encoding"), parsed.Body, &m)
	}
	s.c.add(m)
	return nil
}

// readPart fills Text and HTML from a (possibly multipart) body.
func readPart(contentType, encoding string, body io.Reader, m *Message) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			readPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m)
		}
	}
	b, _ := io.ReadAll(decode(encoding, body))
	switch mt {
	case "text/html":
		m.HTML = string(b)
	case "text/plain":
		m.Text = string(b)
	}
}

// ServeHTTP lists the messages (/), shows one (/messages/N), or gives them as JSON
// (/messages.json).
func (c *Catcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	msgs := c.Messages()
	switch {
	case r.URL.Path == "/messages.json":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(msgs)
	case strings.HasPrefix(r.URL.Path, "/messages/"):
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/messages/"))
		if err != nil || n < 1 || n > len(msgs) {
			http.NotFound(w, r)
			return
		}
		m := msgs[n-1]
		if m.HTML != "" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, m.HTML)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, m.Text)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, msgs)
	}
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<title>Cairn dev mail</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em 1em;text-align:left}</style>
<h1>Mail sent by Cairn dev ({{len .}})</h1>
<table><tr><th>#</th><th>received</th><th>to</th><th>subject</th></tr>
{{range .}}<tr><td>{{.ID}}</td><td>{{.Received.Format "15:04:05"}}</td><td>{{range .To}}{{.}} {{end}}</td>
<td><a href="messages/{{.ID}}">{{.Subject}}</a></td></tr>{{end}}
</table>
<p>JSON: <a href="messages.json">messages.json</a></p>`))
