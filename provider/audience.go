package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Audience adds and removes contacts in Facebook custom audiences through the Marketing
// API's /{audience-id}/users endpoint, sending identifiers normalised and SHA-256 hashed as
// that API requires.
type Audience struct {
	Client
	BaseURL string // CAIRN_AUDIENCE_URL, default https://graph.facebook.com/v19.0
	Token   string // CAIRN_AUDIENCE_TOKEN (access token)
}

// AudienceFromEnv returns the configured provider, or nil when CAIRN_AUDIENCE_TOKEN is unset.
func AudienceFromEnv() *Audience {
	a := &Audience{BaseURL: os.Getenv("CAIRN_AUDIENCE_URL"), Token: os.Getenv("CAIRN_AUDIENCE_TOKEN")}
	if a.Token == "" {
		return nil
	}
	if a.BaseURL == "" {
		a.BaseURL = "https://graph.facebook.com/v19.0"
	}
	return a
}

// HashEmail normalises (trim, lower-case) and hashes an address as the API expects.
func HashEmail(addr string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(addr))))
	return hex.EncodeToString(sum[:])
}

// Change adds (add=true) or removes the address from the audience. Both are idempotent on the
// provider's side: adding a member twice keeps one.
func (a *Audience) Change(ctx context.Context, audienceID, emailAddr string, add bool) error {
	payload, _ := json.Marshal(map[string]any{
		"schema": []string{"EMAIL_SHA256"},
		"data":   [][]string{{HashEmail(emailAddr)}},
	})
	form := url.Values{"payload": {string(payload)}, "access_token": {a.Token}}.Encode()
	method := http.MethodPost
	if !add {
		method = http.MethodDelete
	}
	endpoint := fmt.Sprintf("%s/%s/users", strings.TrimRight(a.BaseURL, "/"), url.PathEscape(audienceID))
	_, err := a.Do(ctx, func() (*http.Request, error) {
		if !add {
			// The Graph API reads a DELETE's parameters from the query string.
			return http.NewRequest(method, endpoint+"?"+form, nil)
		}
		req, err := http.NewRequest(method, endpoint, bytes.NewReader([]byte(form)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req, nil
	}, graphMessage)
	return err
}

func graphMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Code    int    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return fmt.Sprintf("%s (code %d)", e.Error.Message, e.Error.Code)
	}
	return strings.TrimSpace(string(body))
}
