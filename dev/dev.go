// Package dev runs all of Cairn on one machine in one process: an embedded Temporal server
// with its Web UI, PostgreSQL (DATABASE_URL or a local cluster), a worker, a starter, and the
// example journeys. State lives under one folder so a restart resumes every journey in flight.
package dev

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/catalog"
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
	CartIdle     time.Duration // cart abandonment after this idle time; default 1h, negative: off
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
	MetricsURL   string `json:"metrics_url"`
	WriteKey     string `json:"write_key"`
	AdminKey     string `json:"admin_key"`
	DatabaseURL  string `json:"database_url"`
	MailURL      string `json:"mail_url"`
	SMTPAddr     string `json:"smtp_addr"`
	// Journeys are the ids of the journeys applied at start.
	Journeys []string `json:"journeys"`
	// Sample is the journey the banner's curl starts, and Curl that curl.
	Sample string `json:"sample"`
	Curl   string `json:"curl"`
	// JourneysPage is the starter's page of journeys.
	JourneysPage string `json:"journeys_page"`
	// PostgresData is where the local PostgreSQL keeps its data, when not in the state folder
	// (running as root, the postgres user cannot reach it).
	PostgresData string `json:"postgres_data,omitempty"`
	examplesDir  string
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

	dbURL, pgData := cfg.DatabaseURL, ""
	if dbURL == "" {
		dataDir := filepath.Join(stateDir, "postgres")
		dir, err := pgReachable(stateDir)
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		if dir != stateDir {
			dataDir, pgData = filepath.Join(dir, "postgres"), filepath.Join(dir, "postgres")
			if cfg.Fresh {
				if err := os.RemoveAll(dir); err != nil {
					return fmt.Errorf("dev: remove %s: %w", dir, err)
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			_ = os.Chmod(dir, 0o755)
		}
		pg, err := pglocal.Start(ctx, pglocal.Options{DataDir: dataDir})
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
	applied, err := applyExamples(ctx, dbURL, cfg.ExamplesDir)
	if err != nil {
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
	// dev's worker follows the same default send policy as a production worker.
	policy, err := worker.PolicyFromEnv()
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	go func() {
		errs <- worker.Run(runCtx, worker.Config{Temporal: tc, DatabaseURL: dbURL, Codec: codecCfg, Logger: logger.With("component", "worker"), Ready: workerReady, Policy: policy,
			SMTP:      &email.SMTPConfig{Host: smtpHost, Port: smtpPort, TLS: "none", From: "Cairn dev <dev@cairn.local>"},
			PublicURL: "http://" + cfg.HTTPAddr, TrackingKey: keys.TrackingKey, TrackingExpiry: email.DefaultExpiry})
	}()
	go func() {
		// Only this machine reaches dev's starter, so its codec server needs no token: the
		// Web UI decodes with no extra step.
		errs <- starter.Run(runCtx, starter.Config{Temporal: tc, DatabaseURL: dbURL, HTTPAddr: cfg.HTTPAddr, Codec: codecCfg,
			CodecServer: codec.ServerConfig{Open: true, Origins: []string{codec.Origin(srv.UIURL())}},
			WriteKeys:   []string{keys.WriteKey}, AdminKey: keys.AdminKey, TrackingKey: keys.TrackingKey, CartIdle: max(cfg.CartIdle, 0), TemporalUI: srv.UIURL(),
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
		TemporalUI: srv.UIURL(), TemporalGRPC: srv.GRPCAddress(), StarterURL: "http://" + addr, MetricsURL: "http://" + addr + "/metrics",
		WriteKey: keys.WriteKey, AdminKey: keys.AdminKey, DatabaseURL: dbURL,
		MailURL: "http://" + mailLn.Addr().String(), SMTPAddr: catcher.Addr(),
		JourneysPage: "http://" + addr + "/ui/journeys", PostgresData: pgData, examplesDir: cfg.ExamplesDir,
	}
	for _, j := range applied {
		info.Journeys = append(info.Journeys, j.ID)
	}
	info.Sample, info.Curl = sampleCurl(applied, info)
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
	if c.CartIdle < 0 {
		c.CartIdle = -1 // off
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

// pgReachable is where the local PostgreSQL's data goes: in the state folder, unless dev runs
// as root and the postgres user, which PostgreSQL then runs as, cannot reach it (a folder in a
// root user's home, mode 0700): then in a folder of /var/tmp named after the state folder and
// its instance (a random id kept in it), so the same state folder finds the same data at every
// start, and a state folder deleted and made again (a fresh clone in the same place) does not
// find the data of the one before, whose payloads its new codec keys could not open.
func pgReachable(stateDir string) (string, error) {
	if os.Geteuid() != 0 || pglocal.Unreachable(stateDir) == "" {
		return stateDir, nil
	}
	id, err := instanceID(stateDir)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(stateDir + "\x00" + id))
	return filepath.Join("/var/tmp", "cairn-dev-"+hex.EncodeToString(sum[:6])), nil
}

// instanceID is the state folder's random id, made at its first use.
func instanceID(stateDir string) (string, error) {
	file := filepath.Join(stateDir, "instance")
	if b, err := os.ReadFile(file); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return "", fmt.Errorf("state folder: %w", err)
	}
	id := randomHex(8)
	if err := os.WriteFile(file, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("state folder's instance id: %w", err)
	}
	return id, nil
}

// applyExamples checks and applies every journey in dir, with its templates (templates/);
// one bad file stops dev with every problem listed, rather than starting with a journey
// silently missing.
func applyExamples(ctx context.Context, dbURL, dir string) ([]*journey.Journey, error) {
	files, err := catalog.Files(dir)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	c, err := catalog.Read("", dir)
	if err != nil {
		return nil, err
	}
	if len(c.Problems) > 0 {
		msgs := make([]string, len(c.Problems))
		for i, p := range c.Problems {
			msgs[i] = p.String()
		}
		return nil, fmt.Errorf("%s:\n%s", dir, strings.Join(msgs, "\n"))
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	if err := applyObjects(ctx, pool, filepath.Join(dir, "objects")); err != nil {
		return nil, err
	}
	for _, t := range c.Templates {
		if _, err := crm.PutTemplate(ctx, pool, t.Template); err != nil {
			return nil, err
		}
	}
	var out []*journey.Journey
	for _, j := range c.Journeys {
		if _, _, err := crm.ApplyJourney(ctx, pool, j.Journey, string(j.Document)); err != nil {
			return nil, fmt.Errorf("%s: %w", j.File, err)
		}
		out = append(out, j.Journey)
	}
	return out, nil
}

// sampleCurl is a curl that starts one of the journeys dev applied: welcome when there is
// one, else the first whose trigger is a track event, else the first, started by the API.
func sampleCurl(applied []*journey.Journey, in Info) (string, string) {
	var pick *journey.Journey
	for _, j := range applied {
		if j.ID == "welcome" {
			pick = j
		}
	}
	for _, j := range applied {
		if pick == nil && len(j.Triggers) > 0 && j.Triggers[0].Kind == "event" {
			pick = j
		}
	}
	if pick == nil && len(applied) > 0 {
		pick = applied[0]
	}
	if pick == nil {
		return "", ""
	}
	if t := pick.Triggers; len(t) > 0 && t[0].Kind == "event" {
		msg := map[string]any{"userId": "ada", "event": t[0].Event, "context": map[string]any{"traits": map[string]any{"email": "ada@example.com"}}}
		if len(t[0].Where) > 0 {
			msg["properties"] = t[0].Where
		}
		b, _ := json.Marshal(msg)
		return pick.ID, fmt.Sprintf("curl -u %s: %s/v1/track -H 'Content-Type: application/json' \\\n    -d '%s'", in.WriteKey, in.StarterURL, b)
	}
	return pick.ID, fmt.Sprintf("curl -H 'Authorization: Bearer %s' %s/v1/journeys/%s/start -H 'Content-Type: application/json' \\\n    -d '{\"userId\":\"ada\"}'",
		in.AdminKey, in.StarterURL, pick.ID)
}

func printBanner(w io.Writer, in Info, took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nCairn dev is ready (%s)\n\n", took.Round(10*time.Millisecond))
	fmt.Fprintf(&b, "  Temporal UI     %s/namespaces/default/workflows\n", in.TemporalUI)
	fmt.Fprintf(&b, "  Temporal gRPC   %s   (temporal workflow list --address %s --query \"CairnJourney='welcome'\")\n", in.TemporalGRPC, in.TemporalGRPC)
	fmt.Fprintf(&b, "  Starter         %s\n", in.StarterURL)
	fmt.Fprintf(&b, "  Metrics         %s   (Prometheus: the worker's and the starter's)\n", in.MetricsURL)
	fmt.Fprintf(&b, "  Journey pages   %s   (the admin key as the password)\n", in.JourneysPage)
	fmt.Fprintf(&b, "  Codec server    %s/codec   (the UI decodes payloads with it; temporal CLI: --codec-endpoint %s/codec)\n", in.StarterURL, in.StarterURL)
	fmt.Fprintf(&b, "  Write key       %s   (HTTP Basic user name, for /v1/track, /v1/identify)\n", in.WriteKey)
	fmt.Fprintf(&b, "  Admin key       %s   (Authorization: Bearer, for /v1/journeys, /v1/contacts)\n", in.AdminKey)
	fmt.Fprintf(&b, "  PostgreSQL      %s\n", in.DatabaseURL)
	if in.PostgresData != "" {
		fmt.Fprintf(&b, "                  data in %s (running as root, the postgres user cannot reach the state folder)\n", in.PostgresData)
	}
	fmt.Fprintf(&b, "  Mail            %s   (every email sent; SMTP catcher at %s)\n", in.MailURL, in.SMTPAddr)
	if len(in.Journeys) > 0 {
		fmt.Fprintf(&b, "  Journeys        %d from %s: %s\n", len(in.Journeys), in.examplesDir, strings.Join(in.Journeys, ", "))
	}
	if in.Curl != "" {
		fmt.Fprintf(&b, "\nStart the %s journey for a contact:\n\n  %s\n", in.Sample, in.Curl)
		fmt.Fprintf(&b, "\nThen look at it:\n\n")
		fmt.Fprintf(&b, "  curl -H 'Authorization: Bearer %s' %s/v1/contacts/ada\n", in.AdminKey, in.StarterURL)
		fmt.Fprintf(&b, "  open %s/ui/journeys/%s\n", in.StarterURL, in.Sample)
		fmt.Fprintf(&b, "  open %s/namespaces/default/workflows?query=%s\n", in.TemporalUI, url.QueryEscape("CairnJourney=\""+in.Sample+"\""))
	}
	fmt.Fprintln(&b)
	fmt.Fprint(w, b.String())
}
