package starter_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
)

// setupWith is setup with an API that configure adjusts before its handler is built.
func setupWith(t *testing.T, configure func(*starter.API)) *fixture {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	api := &starter.API{DB: pool, WriteKeys: []string{writeKey}, AdminKey: adminKey, Logger: discard()}
	if configure != nil {
		configure(api)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &fixture{ctx: ctx, store: pool, srv: srv}
}

// send makes a prepared request and reads its JSON reply (with the response, for headers).
func (f *fixture) send(t *testing.T, req *http.Request) (reply, *http.Response) {
	t.Helper()
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{Status: resp.StatusCode}
	if len(raw) > 0 {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "every reply is JSON: %s", raw)
		require.NoError(t, json.Unmarshal(raw, &r.Body), "body: %s", raw)
	}
	return r, resp
}

// request prepares a request to the fixture's server.
func (f *fixture) request(t *testing.T, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	require.NoError(t, err)
	return req
}

// nothingStored checks that no request reached the store.
func (f *fixture) nothingStored(t *testing.T) {
	t.Helper()
	require.Zero(t, f.count(t, "events"))
	require.Zero(t, f.count(t, "contacts"))
}
