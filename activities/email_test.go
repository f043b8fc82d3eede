package activities_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/dev/mailcatcher"
	"github.com/cairnhq/cairn/email"
)

type mailFixture struct {
	ctx     context.Context
	a       *activities.Activities
	s       *pgxpool.Pool
	catcher *mailcatcher.Catcher
}

func setupMail(t *testing.T) *mailFixture {
	t.Helper()
	ctx, a, s := setup(t)
	c, err := mailcatcher.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	host, port, _ := net.SplitHostPort(c.Addr())
	p, _ := strconv.Atoi(port)
	sender, err := email.NewSMTP(email.SMTPConfig{Host: host, Port: p, TLS: "none", From: "Shop <shop@example.com>", ReplyTo: "help@example.com"})
	require.NoError(t, err)
	a.Mail = &activities.Mail{Sender: sender, Tracker: email.Tracker{Signer: email.Signer{Key: []byte("k")}, BaseURL: "https://t.example.com"}, Domain: "example.com"}
	_, err = crm.PutTemplate(ctx, s, email.Template{ID: "welcome", Subject: "Welcome {{field \"first_name\" \"friend\"}}",
		Text: "Hello {{field \"first_name\"}}", HTML: `<html><body><p>Hello</p><a href="https://shop.example.com/start">start</a></body></html>`})
	require.NoError(t, err)
	return &mailFixture{ctx: ctx, a: a, s: s, catcher: c}
}

func nonRetryable(t *testing.T, err error, want string) {
	t.Helper()
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.True(t, app.NonRetryable(), "%v", err)
	require.Contains(t, err.Error(), want)
}

func TestSendEmailDeliversTheRenderedTrackedMessageOverSMTPOnce(t *testing.T) {
	t.Parallel()
	f := setupMail(t)
	id := contact(t, f.ctx, f.s, "ada", map[string]any{"email": "ada@example.com", "first_name": "Ada"})
	in := activities.SendEmailInput{Key: "wf/run/hello/1", ContactID: id, Template: "welcome"}
	first, err := f.a.SendEmail(f.ctx, in)
	require.NoError(t, err)
	again, err := f.a.SendEmail(f.ctx, in)
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.Detail, again.Detail)

	msgs := f.catcher.Messages()
	require.Len(t, msgs, 1, "the retry sent nothing")
	m := msgs[0]
	require.Equal(t, []string{"ada@example.com"}, m.To)
	require.Equal(t, "Welcome Ada", m.Subject)
	require.Contains(t, m.Text, "Hello Ada")
	require.Contains(t, m.HTML, "https://t.example.com/v1/t/c/", "links go through the click endpoint")
	require.Contains(t, m.HTML, "https://t.example.com/v1/t/o/", "an open pixel")
	require.NotContains(t, m.HTML, `href="https://shop.example.com/start"`)
	require.Contains(t, m.Headers["List-Unsubscribe"], "<https://t.example.com/v1/t/u/")
	require.Equal(t, "List-Unsubscribe=One-Click", m.Headers["List-Unsubscribe-Post"])
	require.Equal(t, "help@example.com", strings.Trim(m.Headers["Reply-To"], "<>"))
	require.True(t, strings.HasSuffix(m.Headers["Message-Id"], "@example.com>"), m.Headers["Message-Id"])

	var events int
	require.NoError(t, f.s.QueryRow(f.ctx, `SELECT count(*) FROM events WHERE name = 'email_sent'`).Scan(&events))
	require.Equal(t, 1, events)
}

func TestSendEmailRetriedAfterACrashBeforeSMTPSendsExactlyOnce(t *testing.T) {
	t.Parallel()
	f := setupMail(t)
	id := contact(t, f.ctx, f.s, "bo", map[string]any{"email": "bo@example.com"})
	// The first attempt claimed the send (ledger 'sending') and died before reaching SMTP.
	_, err := crm.ClaimEmail(f.ctx, f.s, "k-crash", id, "welcome", func(*crm.EmailSend) error { return nil })
	require.NoError(t, err)
	require.Empty(t, f.catcher.Messages())

	_, err = f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k-crash", ContactID: id, Template: "welcome"})
	require.NoError(t, err)
	_, err = f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k-crash", ContactID: id, Template: "welcome"})
	require.NoError(t, err)
	require.Len(t, f.catcher.Messages(), 1)
	var rows int
	require.NoError(t, f.s.QueryRow(f.ctx, `SELECT count(*) FROM email_messages WHERE status = 'sent'`).Scan(&rows))
	require.Equal(t, 1, rows)
}

// Refusals fail the step for good; a delivery that is not ready (no template yet, no SMTP
// server) is retried; neither leaves anything half-written.
func TestSendEmailRefusalsArePermanentAndLeaveNothingHalfWritten(t *testing.T) {
	t.Parallel()
	f := setupMail(t)
	noAddress := contact(t, f.ctx, f.s, "no-address", nil)
	_, err := f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k1", ContactID: noAddress, Template: "welcome"})
	nonRetryable(t, err, "no email address")

	ok := contact(t, f.ctx, f.s, "ok", map[string]any{"email": "ok@example.com"})
	// A template that does not exist yet is no refusal: the step waits for it.
	_, err = f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k2", ContactID: ok, Template: "nope"})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.False(t, app.NonRetryable(), "%v", err)
	require.Equal(t, activities.ErrTypeNotReady, app.Type())
	require.Contains(t, err.Error(), `template "nope"`)
	require.Contains(t, err.Error(), "PUT /v1/templates/{id}")
	nope := &activities.Activities{DB: f.s}
	_, err = nope.SendEmail(f.ctx, activities.SendEmailInput{Key: "k4", ContactID: ok, Template: "welcome"})
	require.ErrorAs(t, err, &app)
	require.False(t, app.NonRetryable())
	require.Contains(t, err.Error(), "CAIRN_SMTP_HOST")

	_, err = f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k3", ContactID: 999, Template: "welcome"})
	nonRetryable(t, err, "not found")

	var ledger, messages int
	require.NoError(t, f.s.QueryRow(f.ctx, `SELECT count(*) FROM action_ledger`).Scan(&ledger))
	require.NoError(t, f.s.QueryRow(f.ctx, `SELECT count(*) FROM email_messages`).Scan(&messages))
	require.Zero(t, ledger)
	require.Zero(t, messages)
	require.Empty(t, f.catcher.Messages())
}

func TestSendEmailToAMailboxTheServerRefusesFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	f := setupMail(t)
	f.catcher.Reject = func(to string) bool { return strings.HasPrefix(to, "gone@") }
	id := contact(t, f.ctx, f.s, "gone", map[string]any{"email": "gone@example.com"})
	_, err := f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k", ContactID: id, Template: "welcome"})
	nonRetryable(t, err, "550")
}

func TestUnsubscribedContactGetsNoMoreMarketingEmail(t *testing.T) {
	t.Parallel()
	f := setupMail(t)
	id := contact(t, f.ctx, f.s, "cy", map[string]any{"email": "cy@example.com"})
	out, err := f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k1", ContactID: id, Template: "welcome"})
	require.NoError(t, err)
	msgID := int64(out.Detail["message_id"].(float64))
	require.NoError(t, crm.Unsubscribe(f.ctx, f.s, email.Claims{Kind: email.KindUnsubscribe, MessageID: msgID, ContactID: id}, time.Now()))
	require.NoError(t, crm.Unsubscribe(f.ctx, f.s, email.Claims{Kind: email.KindUnsubscribe, MessageID: msgID, ContactID: id}, time.Now()), "twice is fine")

	_, err = f.a.SendEmail(f.ctx, activities.SendEmailInput{Key: "k2", ContactID: id, Template: "welcome"})
	nonRetryable(t, err, "unsubscribed")
	require.Len(t, f.catcher.Messages(), 1)
	c, err := crm.ContactByID(f.ctx, f.s, id)
	require.NoError(t, err)
	require.Contains(t, c.Tags, "unsubscribed")
	var events int
	require.NoError(t, f.s.QueryRow(f.ctx, `SELECT count(*) FROM events WHERE name = 'unsubscribed'`).Scan(&events))
	require.Equal(t, 1, events)
}
