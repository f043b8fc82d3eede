// Package dev runs all of Cairn on one machine in one process: an embedded Temporal server
// with its Web UI, PostgreSQL (DATABASE_URL or a local cluster), a worker, a starter, and the
// example journeys. State lives under one folder so a restart resumes every journey in flight.
package dev

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/dev/embedded"
	"github.com/cairnhq/cairn/dev/mailcatcher"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/worker"
)

// Config says where dev keeps its state and which ports it uses. Port 0 picks a free one.
type Config struct {
	StateDir     string        // default .cairn
	Fresh        bool          // delete StateDir first
	DatabaseURL  string        // use this PostgreSQL instead of a local cluster under StateDir
	HTTPAddr     string        // starter; default 127.0.0.1:8080
	TemporalPort int           // default 7233
	UIPort       int           // default 8233
	SMTPPort     int           // mail catcher SMTP; default 1025
	MailPort     int           // mail catcher web page; default 8025
	CartIdle     time.Duration // cart abandonment after this idle time; default 1h
	ExamplesDir  string        // journeys applied at start; default examples
	Out          io.Writer
	Logger       *slog.Logger
	// Ready, when set, receives what dev printed, once everything is up.
	Ready chan<- Info
}

// CodecKeyFile is the codec's key ring in the state folder.
const CodecKeyFile = "codec.keys"

// Info is what a user needs to use a running dev.
type Info struct {
	TemporalUI   string `json:"temporal_ui"`
	TemporalGRPC string `json:"temporal_grpc"`
	StarterURL   string `json:"starter_url"`
	WriteKey     string `json:"write_key"`
	AdminKey     string `json:"admin_key"`
	DatabaseURL  string `json:"database_url"`
	MailURL      string `json:"mail_url"`
	SMTPAddr     string `json:"smtp_addr"`
	Journeys     []string
}

// Keys are the dev credentials, generated once and kept in the state folder.
type Keys struct {
	WriteKey    string `json:"write_key"`
	AdminKey    string `json:"admin_key"`
	TrackingKey string `json:"tracking_key"`
}

// Run starts everything, prints where to look, and runs until ctx is cancelled; then it stops
// the parts in reverse order, leaving state on disk for the next start.
func Run(ctx context.Context, cfg Config) (err error) {
	cfg.defaults()
	logger := cfg.Logger
	started := time.Now()
	if cfg.Fresh {
		if err := os.RemoveAll(cfg.StateDir); err != nil {
			return fmt.Errorf("dev: remove %s: %w", cfg.StateDir, err)
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("dev: state folder: %w", err)
	}
	stateDir, _ := filepath.Abs(cfg.StateDir)
	// The postgres user (when running as root) must be able to reach its data folder.
	_ = os.Chmod(stateDir, 0o755)

	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		pg, err := pglocal.Start(ctx, pglocal.Options{DataDir: filepath.Join(stateDir, "postgres")})
		if err != nil {
			return fmt.Errorf("dev: postgres: %w", err)
		}
		defer func() {
			if stopErr := pg.Stop(); stopErr != nil {
				logger.Warn("stop postgres", "error", stopErr)
			}
		}()
		dbURL = pg.URL
	}

	srv, err := embedded.Start(embedded.Options{
		DatabaseFile:     filepath.Join(stateDir, "temporal.db"),
		Namespace:        "default",
		SearchAttributes: contract.SearchAttributes,
		GRPCPort:         cfg.TemporalPort,
		UIPort:           cfg.UIPort,
		CodecEndpoint:    "http://" + cfg.HTTPAddr + "/codec",
		LogFile:          filepath.Join(stateDir, "temporal.log"),
	})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer srv.Stop()

	keys, err := loadKeys(filepath.Join(stateDir, "keys.json"))
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	// The codec's key ring: made once, kept with the rest of the state (losing it loses every
	// payload in Temporal's database).
	keyFile := filepath.Join(stateDir, CodecKeyFile)
	if err := codec.EnsureKeyFile(keyFile, "dev-1"); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	ring, err := codec.ReadKeyRing(keyFile)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	codecCfg := codec.Config{Ring: ring}
	if err := applyExamples(ctx, dbURL, cfg.ExamplesDir); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	catcher, err := mailcatcher.Start(fmt.Sprintf("127.0.0.1:%d", cfg.SMTPPort))
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer catcher.Close()
	mailLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.MailPort))
	if err != nil {
		return fmt.Errorf("dev: mail page: %w", err)
	}
	mailSrv := &http.Server{Handler: catcher, ReadHeaderTimeout: 5 * time.Second}
	go mailSrv.Serve(mailLn)
	defer mailSrv.Close()
	smtpHost, smtpPortS, _ := net.SplitHostPort(catcher.Addr())
	smtpPort, _ := strconv.Atoi(smtpPortS)

	tc := cluster.Config{Address: srv.GRPCAddress(), Namespace: srv.Namespace()}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	workerReady := make(chan struct{})
	starterReady := make(chan string, 1)
	errs := make(chan error, 2)
	go func() {
		errs <- worker.Run(runCtx, worker.Config{Temporal: tc, DatabaseURL: dbURL, Codec: codecCfg, Logger: logger.With("component", "worker"), Ready: workerReady,
			SMTP:      &email.SMTPConfig{Host: smtpHost, Port: smtpPort, TLS: "none", From: "Cairn dev <dev@cairn.local>"},
			PublicURL: "http://" + cfg.HTTPAddr, TrackingKey: keys.TrackingKey, TrackingExpiry: email.DefaultExpiry})
	}()
	go func() {
		// Only this machine reaches dev's starter, so its codec server needs no token: the
		// Web UI decodes with no extra step.
		errs <- starter.Run(runCtx, starter.Config{Temporal: tc, DatabaseURL: dbURL, HTTPAddr: cfg.HTTPAddr, Codec: codecCfg,
			CodecServer: codec.ServerConfig{Open: true, Origins: []string{codec.Origin(srv.UIURL())}},
			WriteKeys:   []string{keys.WriteKey}, AdminKey: keys.AdminKey, TrackingKey: keys.TrackingKey, CartIdle: cfg.CartIdle, TemporalUI: srv.UIURL(),
			Logger: logger.With("component", "starter"), Ready: starterReady})
	}()

	var addr string
	for addr == "" || workerReady != nil {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("dev: %w", err)
		case addr = <-starterReady:
		case <-workerReady:
			workerReady = nil
		}
	}
	info := Info{
		TemporalUI: srv.UIURL(), TemporalGRPC: srv.GRPCAddress(), StarterURL: "http://" + addr,
		WriteKey: keys.WriteKey, AdminKey: keys.AdminKey, DatabaseURL: dbURL,
		MailURL: "http://" + mailLn.Addr().String(), SMTPAddr: catcher.Addr(),
	}
	info.Journeys, _ = journeyFiles(cfg.ExamplesDir)
	printBanner(cfg.Out, info, time.Since(started))
	if cfg.Ready != nil {
		cfg.Ready <- info
	}

	running := 2
	select {
	case <-ctx.Done():
	case err = <-errs:
		running--
		err = fmt.Errorf("dev: %w", err)
	}
	stop()
	for ; running > 0; running-- {
		if e := <-errs; e != nil && err == nil {
			err = fmt.Errorf("dev: %w", e)
		}
	}
	return err
}

func (c *Config) defaults() {
	if c.StateDir == "" {
		c.StateDir = ".cairn"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.TemporalPort == 0 {
		c.TemporalPort = 7233
	}
	if c.UIPort == 0 {
		c.UIPort = 8233
	}
	if c.CartIdle == 0 {
		c.CartIdle = time.Hour
	}
	if c.SMTPPort == 0 {
		c.SMTPPort = 1025
	}
	if c.MailPort == 0 {
		c.MailPort = 8025
	}
	if c.ExamplesDir == "" {
		c.ExamplesDir = "examples"
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// FreePort returns a free loopback port, for callers (tests) that want dev off its defaults.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func loadKeys(path string) (Keys, error) {
	var k Keys
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &k); err != nil {
			return k, fmt.Errorf("read %s: %w (delete it to get new keys)", path, err)
		}
		if k.fill() {
			b, _ = json.MarshalIndent(k, "", "  ")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return k, fmt.Errorf("save keys: %w", err)
			}
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	k = Keys{}
	k.fill()
	b, _ = json.MarshalIndent(k, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return k, fmt.Errorf("save keys: %w", err)
	}
	return k, nil
}

// fill generates the keys that are missing (a state folder from an older dev lacks some).
func (k *Keys) fill() bool {
	changed := false
	for _, f := range []struct {
		dst    *string
		prefix string
		n      int
	}{{&k.WriteKey, "wk_", 16}, {&k.AdminKey, "ak_", 24}, {&k.TrackingKey, "tk_", 32}} {
		if *f.dst == "" {
			*f.dst = f.prefix + randomHex(f.n)
			changed = true
		}
	}
	return changed
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func journeyFiles(dir string) ([]string, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files, nil
}

// applyExamples validates and applies every journey in dir; one bad file stops dev with its
// problems listed, rather than starting with a journey silently missing.
func applyExamples(ctx context.Context, dbURL, dir string) error {
	files, err := journeyFiles(dir)
	if err != nil || len(files) == 0 {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return err
	}
	if err := applyTemplates(ctx, pool, filepath.Join(dir, "templates")); err != nil {
		return err
	}
	if err := applyObjects(ctx, pool, filepath.Join(dir, "objects")); err != nil {
		return err
	}
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		j, err := journey.Decode(doc)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, _, err := crm.ApplyJourney(ctx, pool, j, string(doc)); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// applyTemplates saves every email template in dir (<id>.yaml with subject, html, text).
func applyTemplates(ctx context.Context, db crm.DB, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var t email.Template
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&t); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		t.ID = strings.TrimSuffix(filepath.Base(f), ".yaml")
		if err := t.Check(); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := crm.PutTemplate(ctx, db, t); err != nil {
			return err
		}
	}
	return nil
}

func printBanner(w io.Writer, in Info, took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nCairn dev is ready (%s)\n\n", took.Round(10*time.Millisecond))
	fmt.Fprintf(&b, "  Temporal UI     %s/namespaces/default/workflows\n", in.TemporalUI)
	fmt.Fprintf(&b, "  Temporal gRPC   %s   (temporal workflow list --address %s --query \"CairnJourney='welcome'\")\n", in.TemporalGRPC, in.TemporalGRPC)
	fmt.Fprintf(&b, "  Starter         %s\n", in.StarterURL)
	fmt.Fprintf(&b, "  Codec server    %s/codec   (the UI decodes payloads with it; temporal CLI: --codec-endpoint %s/codec)\n", in.StarterURL, in.StarterURL)
	fmt.Fprintf(&b, "  Write key       %s   (HTTP Basic user name, for /v1/track, /v1/identify)\n", in.WriteKey)
	fmt.Fprintf(&b, "  Admin key       %s   (Authorization: Bearer, for /v1/journeys, /v1/contacts)\n", in.AdminKey)
	fmt.Fprintf(&b, "  PostgreSQL      %s\n", in.DatabaseURL)
	fmt.Fprintf(&b, "  Mail            %s   (every email sent; SMTP catcher at %s)\n", in.MailURL, in.SMTPAddr)
	if len(in.Journeys) > 0 {
		names := make([]string, len(in.Journeys))
		for i, f := range in.Journeys {
			names[i] = strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		}
		fmt.Fprintf(&b, "  Journeys        %d from %s: %s\n", len(names), filepath.Dir(in.Journeys[0]), strings.Join(names, ", "))
	}
	fmt.Fprintf(&b, "\nStart the welcome journey for a contact:\n\n")
	fmt.Fprintf(&b, "  curl -u %s: %s/v1/track -H 'Content-Type: application/json' \\\n", in.WriteKey, in.StarterURL)
	fmt.Fprintf(&b, "    -d '{\"userId\":\"ada\",\"event\":\"Signed Up\",\"context\":{\"traits\":{\"email\":\"ada@example.com\"}}}'\n")
	fmt.Fprintf(&b, "\nThen look at it:\n\n")
	fmt.Fprintf(&b, "  curl -H 'Authorization: Bearer %s' %s/v1/contacts/ada\n", in.AdminKey, in.StarterURL)
	fmt.Fprintf(&b, "  open %s/namespaces/default/workflows?query=%s\n\n", in.TemporalUI, "CairnJourney%3D%22welcome%22")
	fmt.Fprint(w, b.String())
}
