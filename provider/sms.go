package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// SMS sends text messages through Twilio's Messages API (or anything that speaks it).
type SMS struct {
	Client
	BaseURL   string // CAIRN_SMS_URL, default https://api.twilio.com
	AccountID string // CAIRN_SMS_ACCOUNT (Twilio Account SID)
	Token     string // CAIRN_SMS_TOKEN (auth token)
	From      string // CAIRN_SMS_FROM (sender number, E.164)
}

// SMSFromEnv returns the configured SMS provider, or nil when CAIRN_SMS_ACCOUNT is unset.
func SMSFromEnv() (*SMS, error) {
	s := &SMS{BaseURL: os.Getenv("CAIRN_SMS_URL"), AccountID: os.Getenv("CAIRN_SMS_ACCOUNT"),
		Token: os.Getenv("CAIRN_SMS_TOKEN"), From: os.Getenv("CAIRN_SMS_FROM")}
	if s.AccountID == "" {
		return nil, nil
	}
	if s.BaseURL == "" {
		s.BaseURL = "https://api.twilio.com"
	}
	if s.Token == "" || s.From == "" {
		return nil, errors.New("CAIRN_SMS_ACCOUNT is set, so CAIRN_SMS_TOKEN and CAIRN_SMS_FROM must be too")
	}
	return s, nil
}

// Send sends body to the number and returns the provider's message id. The key goes in
// Twilio's idempotency header, so a retried call is not a second message.
func (s *SMS) Send(ctx context.Context, key, to, body string) (string, error) {
	endpoint := fmt.Sprintf("%s/2010-04-01/Accounts/%s/Messages.json", strings.TrimRight(s.BaseURL, "/"), url.PathEscape(s.AccountID))
	form := url.Values{"To": {to}, "From": {s.From}, "Body": {body}}.Encode()
	out, err := s.Do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(s.AccountID, s.Token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("I-Twilio-Idempotency-Token", key)
		return req, nil
	}, twilioMessage)
	if err != nil {
		return "", err
	}
	var reply struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(out, &reply); err != nil || reply.SID == "" {
		return "", fmt.Errorf("SMS provider reply has no message sid: %.200s", out)
	}
	return reply.SID, nil
}

func twilioMessage(body []byte) string {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
	}
	return strings.TrimSpace(string(body))
}
