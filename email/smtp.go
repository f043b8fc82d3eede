package email

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
)

// SMTPConfig is where and how to send (CAIRN_SMTP_*).
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	// TLS is "starttls" (the default: required), "tls" (implicit, port 465) or "none"
	// (plain, for local catchers only).
	TLS     string
	From    string
	ReplyTo string
}

// SMTPFromEnv reads CAIRN_SMTP_HOST, _PORT, _USERNAME, _PASSWORD, _TLS, _FROM, _REPLY_TO.
// It returns ok=false when no host is set.
func SMTPFromEnv() (SMTPConfig, bool) {
	c := SMTPConfig{
		Host: os.Getenv("CAIRN_SMTP_HOST"), Username: os.Getenv("CAIRN_SMTP_USERNAME"),
		Password: os.Getenv("CAIRN_SMTP_PASSWORD"), TLS: os.Getenv("CAIRN_SMTP_TLS"),
		From: os.Getenv("CAIRN_SMTP_FROM"), ReplyTo: os.Getenv("CAIRN_SMTP_REPLY_TO"),
	}
	c.Port, _ = strconv.Atoi(os.Getenv("CAIRN_SMTP_PORT"))
	return c, c.Host != ""
}

// SMTP sends messages with go-mail.
type SMTP struct {
	cfg SMTPConfig
}

// NewSMTP checks the configuration.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if cfg.Host == "" {
		return nil, errors.New("CAIRN_SMTP_HOST is not set")
	}
	if cfg.From == "" {
		return nil, errors.New("CAIRN_SMTP_FROM is not set: emails need a sender")
	}
	switch cfg.TLS {
	case "", "starttls", "tls", "none":
	default:
		return nil, fmt.Errorf("CAIRN_SMTP_TLS %q is not one of starttls, tls, none", cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{"tls": 465, "none": 25}[cfg.TLS]
		if cfg.Port == 0 {
			cfg.Port = 587
		}
	}
	return &SMTP{cfg: cfg}, nil
}

// PermanentError is a rejection that a retry will not change (an SMTP 5xx reply, a bad address).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Send delivers one message; a 5xx reply comes back as *PermanentError.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := mail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return &PermanentError{fmt.Errorf("from %q: %w", s.cfg.From, err)}
	}
	if err := msg.To(m.To); err != nil {
		return &PermanentError{fmt.Errorf("to %q: %w", m.To, err)}
	}
	if s.cfg.ReplyTo != "" {
		if err := msg.ReplyTo(s.cfg.ReplyTo); err != nil {
			return &PermanentError{fmt.Errorf("reply-to %q: %w", s.cfg.ReplyTo, err)}
		}
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID)
	msg.SetDate()
	if m.Unsubscribe != "" {
		msg.SetGenHeader("List-Unsubscribe", "<"+m.Unsubscribe+">")
		msg.SetGenHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(mail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
	}
	opts := []mail.Option{mail.WithPort(s.cfg.Port), mail.WithTimeout(30 * time.Second)}
	switch s.cfg.TLS {
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	c, err := mail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		var tp *textproto.Error
		if errors.As(err, &tp) && tp.Code >= 500 {
			return &PermanentError{fmt.Errorf("smtp %s:%d refused the message: %w", s.cfg.Host, s.cfg.Port, err)}
		}
		if strings.Contains(err.Error(), " 5") && isPermanentReply(err.Error()) {
			return &PermanentError{fmt.Errorf("smtp %s:%d refused the message: %w", s.cfg.Host, s.cfg.Port, err)}
		}
		return fmt.Errorf("smtp %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return nil
}

// isPermanentReply spots a 5xx SMTP reply code in an error text, for errors that do not
// wrap textproto.Error.
func isPermanentReply(s string) bool {
	for _, f := range strings.Fields(s) {
		if len(f) == 3 && f[0] == '5' && f[1] >= '0' && f[1] <= '9' && f[2] >= '0' && f[2] <= '9' {
			return true
		}
	}
	return false
}
