package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
)

// Notify posts team notifications to a Slack-style incoming webhook.
type Notify struct {
	Client
	URL string // CAIRN_NOTIFY_URL
}

// NotifyFromEnv returns the configured webhook, or nil when CAIRN_NOTIFY_URL is unset.
func NotifyFromEnv() *Notify {
	if u := os.Getenv("CAIRN_NOTIFY_URL"); u != "" {
		return &Notify{URL: u}
	}
	return nil
}

// Send posts {"text": ..., "channel": ...}. Webhooks take no idempotency key; the key is sent
// as Idempotency-Key for receivers that honour it.
func (n *Notify) Send(ctx context.Context, key, channel, text string) error {
	payload := map[string]string{"text": text}
	if channel != "" {
		payload["channel"] = channel
	}
	body, _ := json.Marshal(payload)
	_, err := n.Do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, n.URL, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		return req, nil
	}, func(b []byte) string { return strings.TrimSpace(string(b)) })
	return err
}
