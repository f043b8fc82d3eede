package starter_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/starter"
)

// Not parallel: it sets the environment.
func TestConfigFromEnvReadsTheEdgeSettingsAndTheirDefaults(t *testing.T) {
	for _, k := range []string{"CAIRN_AUTH_FAILURES_PER_MINUTE", "CAIRN_AUTH_FAILURE_BURST", "CAIRN_TRUSTED_PROXIES", "CAIRN_ENGAGEMENT_WINDOW",
		"CAIRN_HTTP_READ_HEADER_TIMEOUT", "CAIRN_HTTP_READ_TIMEOUT", "CAIRN_HTTP_WRITE_TIMEOUT", "CAIRN_HTTP_IDLE_TIMEOUT"} {
		t.Setenv(k, "")
	}
	c, err := starter.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, 10.0, c.AuthFailuresPerMinute)
	require.Equal(t, 10, c.AuthFailureBurst)
	require.Empty(t, c.TrustedProxies)
	require.Zero(t, c.EngagementWindow, "zero is the default window")
	require.Equal(t, starter.HTTPTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: time.Minute, Idle: 2 * time.Minute}, c.HTTP)

	t.Setenv("CAIRN_AUTH_FAILURES_PER_MINUTE", "0")
	t.Setenv("CAIRN_AUTH_FAILURE_BURST", "3")
	t.Setenv("CAIRN_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,fd00::/8")
	t.Setenv("CAIRN_ENGAGEMENT_WINDOW", "5m")
	t.Setenv("CAIRN_HTTP_READ_HEADER_TIMEOUT", "2s")
	t.Setenv("CAIRN_HTTP_READ_TIMEOUT", "1m30s")
	t.Setenv("CAIRN_HTTP_WRITE_TIMEOUT", "2m")
	t.Setenv("CAIRN_HTTP_IDLE_TIMEOUT", "1h")
	c, err = starter.ConfigFromEnv()
	require.NoError(t, err)
	require.Zero(t, c.AuthFailuresPerMinute)
	require.Equal(t, 3, c.AuthFailureBurst)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("fd00::/8")}, c.TrustedProxies)
	require.Equal(t, 5*time.Minute, c.EngagementWindow)
	require.Equal(t, starter.HTTPTimeouts{ReadHeader: 2 * time.Second, Read: 90 * time.Second, Write: 2 * time.Minute, Idle: time.Hour}, c.HTTP)

	for _, off := range []string{"0", "0s"} {
		t.Setenv("CAIRN_ENGAGEMENT_WINDOW", off)
		c, err = starter.ConfigFromEnv()
		require.NoError(t, err)
		require.Negative(t, c.EngagementWindow, "%q counts every repeat", off)
	}

	for k, v := range map[string]string{"CAIRN_TRUSTED_PROXIES": "proxy.local", "CAIRN_HTTP_READ_TIMEOUT": "0", "CAIRN_AUTH_FAILURE_BURST": "0", "CAIRN_ENGAGEMENT_WINDOW": "soon"} {
		t.Setenv(k, v)
		_, err = starter.ConfigFromEnv()
		require.ErrorContains(t, err, k)
		t.Setenv(k, "")
	}
}

func TestConfigFromEnvReadsTheOperationsSettings(t *testing.T) {
	t.Setenv("CAIRN_METRICS_ADDR", ":9090")
	t.Setenv("CAIRN_DB_MAX_CONNS", "48")
	c, err := starter.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, ":9090", c.MetricsAddr)
	require.Equal(t, 48, c.DBMaxConns)
	t.Setenv("CAIRN_DB_MAX_CONNS", "-1")
	_, err = starter.ConfigFromEnv()
	require.ErrorContains(t, err, "CAIRN_DB_MAX_CONNS")
}
