package starter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
)

func TestSignedSourceEventsAreVerifiedBeforeAnythingIsStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	store := pool
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	api := &starter.API{DB: store, WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: discard(),
		SourceSecrets: map[string]string{"shop": "s3cret"}, Clock: fixed(now)}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	post := func(source, sig string, body []byte) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/sources/"+source+"/events", bytes.NewReader(body))
		if sig != "" {
			req.Header.Set(starter.SignatureHeader, sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error.Message
	}
	body := []byte(`{"userId":"ada","event":"Order Completed","properties":{"total":42},"messageId":"o-1"}`)

	status, _ := post("shop", starter.Sign("s3cret", now, body), body)
	require.Equal(t, 200, status)
	status, _ = post("shop", starter.Sign("s3cret", now.Add(-time.Minute), body), body)
	require.Equal(t, 200, status, "a redelivery within the tolerance is accepted and deduplicated")

	for name, c := range map[string]struct {
		source, sig string
		body        []byte
		status      int
		says        string
	}{
		"no signature":   {"shop", "", body, 401, "missing"},
		"wrong secret":   {"shop", starter.Sign("guess", now, body), body, 401, "does not match"},
		"tampered body":  {"shop", starter.Sign("s3cret", now, body), []byte(`{"userId":"ada","event":"Order Completed","properties":{"total":4200}}`), 401, "does not match"},
		"too old":        {"shop", starter.Sign("s3cret", now.Add(-10*time.Minute), body), body, 401, "tolerance"},
		"unknown source": {"crm", starter.Sign("s3cret", now, body), body, 404, "no signing source"},
		"garbled header": {"shop", "v1=abc", body, 401, "must look like"},
	} {
		status, msg := post(c.source, c.sig, c.body)
		require.Equal(t, c.status, status, name)
		require.Contains(t, msg, c.says, name)
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE source = 'source:shop'`).Scan(&n))
	require.Equal(t, 1, n)
}

// fixed is a clock that always says t.
type fixed time.Time

func (f fixed) Now() time.Time { return time.Time(f) }
