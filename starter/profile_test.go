package starter_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSegmentContextFillsTheProfileTheContactEndpointShows(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"firstName":"Ada","phone":"+44 20","address":{"city":"London"}}}`, basic(writeKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Product Viewed",
		"context":{"location":{"country":"United Kingdom","region":"England","city":"Leeds","latitude":53.8},
		"device":{"type":"ios","model":"iPhone"},"timezone":"Europe/London"}}`, basic(writeKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"x","context":{"location":{"country":7},"device":"odd"}}`, basic(writeKey)).Status,
		"a context of unexpected shape is ignored, as Segment does")
	r := f.do(t, "GET", "/v1/contacts/ada", "", bearer(adminKey))
	require.Equal(t, 200, r.Status)
	c := r.Body["contact"].(map[string]any)
	require.Equal(t, "Ada", c["first_name"])
	require.Equal(t, "+44 20", c["phone"])
	require.Equal(t, "London", c["city"], "traits win over the context")
	require.Equal(t, "United Kingdom", c["country"])
	require.Equal(t, "England", c["region"])
	require.Equal(t, "ios", c["device_type"])
	require.Equal(t, "Europe/London", c["timezone"])
}
