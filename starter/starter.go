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
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// Config is what a starter needs.
type Config struct {
	Temporal    cluster.Config
	DatabaseURL string
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
	// QueryTimeout (CAIRN_QUERY_TIMEOUT, default 5s) bounds each statement of a segment's
	// count or page of members; past it the API answers 503 query_timeout.
	QueryTimeout time.Duration
	Logger       *slog.Logger
	// Ready, when set, receives the listening address once the HTTP server accepts requests.
	Ready chan<- string
}

// ConfigFromEnv reads the starter's configuration from the environment.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Temporal:     cluster.FromEnv(),
		DatabaseURL:  os.Getenv("DATABASE_URL"),
		HTTPAddr:     os.Getenv("CAIRN_HTTP_ADDR"),
		AdminKey:     os.Getenv("CAIRN_ADMIN_KEY"),
		TrackingKey:  os.Getenv("CAIRN_TRACKING_KEY"),
		CartIdle:     time.Hour,
		RatePerKey:   200,
		QueryTimeout: crm.DefaultQueryTimeout,
	}
	if v := os.Getenv("CAIRN_QUERY_TIMEOUT"); v != "" {
		d, err := journey.ParseDuration(v)
		if err != nil || d.D <= 0 {
			return c, fmt.Errorf("CAIRN_QUERY_TIMEOUT %q is not a duration such as 5s or 1m", v)
		}
		c.QueryTimeout = d.D
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
	if v := os.Getenv("CAIRN_CART_IDLE"); v == "0" {
		c.CartIdle = 0
	} else if v != "" {
		d, err := journey.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("CAIRN_CART_IDLE: %w", err)
		}
		c.CartIdle = d.D
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
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("starter: DATABASE_URL: %w", err)
	}
	// HTTP requests, the listener, the dispatcher's batch and its parallel per-contact
	// transactions all hold connections; the default (4 on two cores) would serialise them.
	if pcfg.MaxConns < 32 {
		pcfg.MaxConns = 32
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("starter: database: %w", err)
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
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
		RatePerKey: cfg.RatePerKey, RateBurst: burst, SourceSecrets: cfg.SourceSecrets, Logger: logger}
	srv := &http.Server{Handler: WithQueryTimeout(api.Handler(), cfg.QueryTimeout), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if cfg.Ready != nil {
		cfg.Ready <- ln.Addr().String()
	}
	logger.Info("starter listening", "addr", ln.Addr().String())

	disp := &Dispatcher{DB: pool, Temporal: tc, Logger: logger, CartIdle: cfg.CartIdle}
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
