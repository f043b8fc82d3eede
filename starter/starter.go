// Package starter is Cairn's trigger service: the HTTP API that accepts events and journey
// definitions, and the dispatcher that turns stored events into journey starts and signals.
package starter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/clock"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/telemetry"
)

// Config is what a starter needs.
type Config struct {
	Temporal    cluster.Config
	DatabaseURL string
	// Codec encrypts the payloads the starter writes and serves /codec (CAIRN_CODEC_*).
	Codec codec.Config
	// CodecServer configures the codec server's authentication and CORS.
	CodecServer codec.ServerConfig
	HTTPAddr    string   // CAIRN_HTTP_ADDR, default 127.0.0.1:8080
	WriteKeys   []string // CAIRN_WRITE_KEYS, comma-separated
	AdminKey    string   // CAIRN_ADMIN_KEY
	TrackingKey string   // CAIRN_TRACKING_KEY: verifies email tracking and unsubscribe links
	// CartIdle (CAIRN_CART_IDLE, default 1h; "0" turns it off) is how long a cart may sit
	// before Cairn records cart_abandoned.
	CartIdle time.Duration
	// RatePerKey (CAIRN_RATE_PER_KEY, requests per second, default 200; 0: none) and
	// RateBurst (CAIRN_RATE_BURST, default 2× the rate) limit each write key.
	RatePerKey float64
	RateBurst  int
	// SourceSecrets (CAIRN_SOURCE_SECRETS, "shop=secret,crm=secret2") are the signing sources
	// that post to /v1/sources/{source}/events with an HMAC signature instead of a write key.
	SourceSecrets map[string]string
	// AuthFailuresPerMinute (CAIRN_AUTH_FAILURES_PER_MINUTE, default 10; 0: none) and
	// AuthFailureBurst (CAIRN_AUTH_FAILURE_BURST, default 10) limit failed authentications
	// per client address; TrustedProxies (CAIRN_TRUSTED_PROXIES, CIDRs) are the reverse
	// proxies whose X-Forwarded-For names the client.
	AuthFailuresPerMinute float64
	AuthFailureBurst      int
	TrustedProxies        []netip.Prefix
	// EngagementWindow (CAIRN_ENGAGEMENT_WINDOW, default 60s; "0": every repeat counts) is
	// how long a repeated open or click of one message counts once.
	EngagementWindow time.Duration
	// HTTP holds the HTTP server's timeouts (CAIRN_HTTP_*_TIMEOUT); zero ones take the defaults.
	HTTP   HTTPTimeouts
	Logger *slog.Logger
	// TemporalUI (CAIRN_TEMPORAL_UI_URL) is the Web UI's base URL, for links to runs.
	TemporalUI string
	// Dispatch tunes the dispatcher: CAIRN_DISPATCH_CONCURRENCY (contacts dispatched at once,
	// default 128), CAIRN_DISPATCH_BATCH (contacts per claim, default 64), CAIRN_DISPATCH_MAX_ATTEMPTS
	// (failures before an event is dead-lettered, default 5).
	DispatchConcurrency int
	DispatchBatch       int
	DispatchMaxAttempts int
	// MetricsAddr (CAIRN_METRICS_ADDR), when set, serves /metrics, /livez and /readyz on a
	// listener of their own, and /metrics no longer on the API.
	MetricsAddr string
	// DBMaxConns (CAIRN_DB_MAX_CONNS, default 32) bounds the PostgreSQL pool.
	DBMaxConns int
	// Clock is the starter's clock (nil: the system's); tests move it.
	Clock clock.Clock
	// QueryTimeout (CAIRN_QUERY_TIMEOUT, default 5s) bounds each statement of a segment's
	// count or page of members; past it the API answers 503 query_timeout.
	QueryTimeout time.Duration
	// Ready, when set, receives the listening address once the HTTP server accepts requests.
	Ready chan<- string
}

// HTTPTimeouts bound how long a connection may hold the server: to send its headers
// (ReadHeader), its whole request (Read), to be answered (Write, from the end of its
// headers), and to stay open between requests (Idle).
type HTTPTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultHTTPTimeouts: a request's headers come within 10 s from any client worth serving; its
// body (512 KiB for events, 1 MiB for journeys) within 30 s even on a poor mobile link; a
// reply within 60 s covers the slowest management call (defining a field on a large
// contacts table); an idle keep-alive connection is kept 2 minutes.
var DefaultHTTPTimeouts = HTTPTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}

// NewHTTPServer is the server the starter runs its API on: t's timeouts (zero ones take the
// defaults) and request headers of at most 64 KiB. Tests use it to run the API as
// production does.
func NewHTTPServer(h http.Handler, t HTTPTimeouts) *http.Server {
	pick := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: pick(t.ReadHeader, DefaultHTTPTimeouts.ReadHeader),
		ReadTimeout:       pick(t.Read, DefaultHTTPTimeouts.Read),
		WriteTimeout:      pick(t.Write, DefaultHTTPTimeouts.Write),
		IdleTimeout:       pick(t.Idle, DefaultHTTPTimeouts.Idle),
		MaxHeaderBytes:    64 << 10,
	}
}

// ConfigFromEnv reads the starter's configuration from the environment.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Temporal:    cluster.FromEnv(),
		DatabaseURL: os.Getenv("DATABASE_URL"),
		HTTPAddr:    os.Getenv("CAIRN_HTTP_ADDR"),
		MetricsAddr: os.Getenv("CAIRN_METRICS_ADDR"),
		AdminKey:    os.Getenv("CAIRN_ADMIN_KEY"),
		TrackingKey: os.Getenv("CAIRN_TRACKING_KEY"),
		TemporalUI:  os.Getenv("CAIRN_TEMPORAL_UI_URL"),
		CartIdle:    time.Hour,
		RatePerKey:  200,
		HTTP:        DefaultHTTPTimeouts,

		AuthFailuresPerMinute: 10,
		AuthFailureBurst:      10,
		QueryTimeout:          crm.DefaultQueryTimeout,
	}
	if v := os.Getenv("CAIRN_QUERY_TIMEOUT"); v != "" {
		d, err := journey.ParseDuration(v)
		if err != nil || d.D <= 0 {
			return c, fmt.Errorf("CAIRN_QUERY_TIMEOUT %q is not a duration such as 5s or 1m", v)
		}
		c.QueryTimeout = d.D
	}
	var err error
	if c.Codec, err = codec.ConfigFromEnv(); err != nil {
		return c, err
	}
	if c.CodecServer, err = codec.ServerConfigFromEnv(); err != nil {
		return c, err
	}
	if v := os.Getenv("CAIRN_SOURCE_SECRETS"); v != "" {
		c.SourceSecrets = map[string]string{}
		for _, pair := range strings.Split(v, ",") {
			name, secret, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || name == "" || secret == "" {
				return c, fmt.Errorf("CAIRN_SOURCE_SECRETS: %q is not source=secret", pair)
			}
			c.SourceSecrets[name] = secret
		}
	}
	if v := os.Getenv("CAIRN_RATE_PER_KEY"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return c, fmt.Errorf("CAIRN_RATE_PER_KEY %q is not a number of requests per second", v)
		}
		c.RatePerKey = f
	}
	if v := os.Getenv("CAIRN_RATE_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("CAIRN_RATE_BURST %q is not a positive whole number", v)
		}
		c.RateBurst = n
	}
	if v := os.Getenv("CAIRN_AUTH_FAILURES_PER_MINUTE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return c, fmt.Errorf("CAIRN_AUTH_FAILURES_PER_MINUTE %q is not a number of failures per minute", v)
		}
		c.AuthFailuresPerMinute = f
	}
	if v := os.Getenv("CAIRN_AUTH_FAILURE_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("CAIRN_AUTH_FAILURE_BURST %q is not a positive whole number", v)
		}
		c.AuthFailureBurst = n
	}
	for _, v := range strings.Split(os.Getenv("CAIRN_TRUSTED_PROXIES"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return c, fmt.Errorf("CAIRN_TRUSTED_PROXIES: %q is not an address or a network like 10.0.0.0/8", v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, p.Masked())
	}
	if v := os.Getenv("CAIRN_ENGAGEMENT_WINDOW"); v == "0" {
		c.EngagementWindow = -1
	} else if v != "" {
		d, err := journey.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("CAIRN_ENGAGEMENT_WINDOW: %w", err)
		}
		c.EngagementWindow = d.D
		if d.D == 0 {
			c.EngagementWindow = -1
		}
	}
	for _, t := range []struct {
		name string
		to   *time.Duration
	}{{"CAIRN_HTTP_READ_HEADER_TIMEOUT", &c.HTTP.ReadHeader}, {"CAIRN_HTTP_READ_TIMEOUT", &c.HTTP.Read},
		{"CAIRN_HTTP_WRITE_TIMEOUT", &c.HTTP.Write}, {"CAIRN_HTTP_IDLE_TIMEOUT", &c.HTTP.Idle}} {
		if v := os.Getenv(t.name); v != "" {
			d, err := journey.ParseDuration(v)
			if err != nil || d.D <= 0 {
				return c, fmt.Errorf("%s %q is not a duration above zero (e.g. 30s, 2m)", t.name, v)
			}
			*t.to = d.D
		}
	}
	if d, set, err := CartIdleFromEnv(); err != nil {
		return c, err
	} else if set {
		c.CartIdle = d
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"CAIRN_DISPATCH_CONCURRENCY", &c.DispatchConcurrency}, {"CAIRN_DISPATCH_BATCH", &c.DispatchBatch},
		{"CAIRN_DISPATCH_MAX_ATTEMPTS", &c.DispatchMaxAttempts}, {"CAIRN_DB_MAX_CONNS", &c.DBMaxConns}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return c, fmt.Errorf("%s %q is not a positive whole number", v.name, s)
			}
			*v.dst = n
		}
	}
	for _, k := range strings.Split(os.Getenv("CAIRN_WRITE_KEYS"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.WriteKeys = append(c.WriteKeys, k)
		}
	}
	return c, nil
}

// Run serves the HTTP API and runs the dispatcher until ctx is cancelled. The starter does
// not need Temporal to accept events: it connects lazily and dispatches when Temporal is up.
func Run(ctx context.Context, cfg Config) error {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.DatabaseURL == "" {
		return errors.New("starter: DATABASE_URL is not set")
	}
	if len(cfg.WriteKeys) == 0 {
		return errors.New("starter: CAIRN_WRITE_KEYS is not set: no source could send events")
	}
	if cfg.AdminKey == "" {
		return errors.New("starter: CAIRN_ADMIN_KEY is not set: journeys could not be managed")
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:8080"
	}
	pcfg, err := crm.PoolConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("starter: DATABASE_URL: %w", err)
	}
	// HTTP requests, the listener, the dispatcher's batch and its parallel per-contact
	// transactions all hold connections; the default (4 on two cores) would serialise them.
	if pcfg.MaxConns < 32 {
		pcfg.MaxConns = 32
	}
	if cfg.DBMaxConns > 0 {
		pcfg.MaxConns = int32(cfg.DBMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("starter: database: %w", err)
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("starter: %w", err)
	}
	if cfg.Temporal.Codec, err = cfg.Codec.Build(pool, logger); err != nil {
		return fmt.Errorf("starter: %w", err)
	}
	tc, err := cluster.Lazy(cfg.Temporal, logger.With("component", "temporal-sdk"))
	if err != nil {
		return fmt.Errorf("starter: %w", err)
	}
	defer tc.Close()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("starter: listen on %s (set CAIRN_HTTP_ADDR to use another address): %w", cfg.HTTPAddr, err)
	}
	if cfg.TrackingKey == "" {
		logger.Warn("CAIRN_TRACKING_KEY is not set: email tracking and unsubscribe links will be refused")
	}
	burst := cfg.RateBurst
	if burst == 0 {
		burst = int(2 * cfg.RatePerKey)
	}
	api := &API{DB: pool, WriteKeys: cfg.WriteKeys, AdminKey: cfg.AdminKey, TrackingKey: []byte(cfg.TrackingKey),
		RatePerKey: cfg.RatePerKey, RateBurst: burst, SourceSecrets: cfg.SourceSecrets, Logger: logger, Clock: cfg.Clock,
		Temporal: tc, Namespace: cfg.Temporal.Namespace, TemporalUI: cfg.TemporalUI, Codec: cfg.Temporal.Codec,
		AuthFailuresPerMinute: cfg.AuthFailuresPerMinute, AuthFailureBurst: cfg.AuthFailureBurst,
		TrustedProxies: cfg.TrustedProxies, EngagementWindow: cfg.EngagementWindow, NoMetrics: cfg.MetricsAddr != "", Background: ctx, Scheduler: &TemporalScheduler{Client: tc}}
	if cfg.Temporal.Codec != nil {
		api.CodecServer = codec.NewServer(cfg.Temporal.Codec, api.Namespace, cfg.CodecServer, logger)
		if !cfg.CodecServer.On() {
			logger.Warn("the codec server is off (set CAIRN_CODEC_TOKENS or CAIRN_CODEC_JWKS_URL): Temporal UI and the temporal CLI will show payloads encrypted")
		}
	}
	srv := NewHTTPServer(WithQueryTimeout(api.Handler(), cfg.QueryTimeout), cfg.HTTP)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	telemetry.WatchQueue(func(ctx context.Context) (int64, int64, error) { return crm.QueueDepth(ctx, pool) })
	defer telemetry.WatchQueue(nil)
	if cfg.MetricsAddr != "" {
		msrv, err := telemetry.Serve(cfg.MetricsAddr, api.readyChecks()...)
		if err != nil {
			srv.Close()
			return fmt.Errorf("starter: %w", err)
		}
		defer msrv.Close()
		logger.Info("starter metrics listening", "addr", msrv.Addr)
	}
	if cfg.Ready != nil {
		cfg.Ready <- ln.Addr().String()
	}
	logger.Info("starter listening", "addr", ln.Addr().String())

	disp := &Dispatcher{DB: pool, Temporal: tc, Logger: logger, CartIdle: cfg.CartIdle, Clock: cfg.Clock,
		Concurrency: cfg.DispatchConcurrency, Batch: cfg.DispatchBatch, MaxAttempts: cfg.DispatchMaxAttempts}
	dispatched := make(chan error, 1)
	dctx, stopDispatch := context.WithCancel(ctx)
	defer stopDispatch()
	go func() { dispatched <- disp.Run(dctx) }()

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("starter: http: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	stopDispatch()
	<-dispatched
	return err
}

// CartIdleFromEnv reads CAIRN_CART_IDLE (a duration; "0" turns cart abandonment off, as 0);
// set says whether it is set at all. The starter and dev read it.
func CartIdleFromEnv() (d time.Duration, set bool, err error) {
	v := os.Getenv("CAIRN_CART_IDLE")
	switch v {
	case "":
		return 0, false, nil
	case "0":
		return 0, true, nil
	}
	dur, err := journey.ParseDuration(v)
	if err != nil {
		return 0, true, fmt.Errorf("CAIRN_CART_IDLE: %w", err)
	}
	return dur.D, true, nil
}
