// Package embedded runs a Temporal server and its Web UI inside the current process, on SQLite.
//
// It exists for `cairn dev` and the end-to-end tests only: a single-shard SQLite server is a
// development store, not a production one. It is kept in its own package because the server
// is large to compile; nothing that a production binary path needs imports it.
package embedded

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options says where and how the embedded server runs. Zero ports are picked free.
type Options struct {
	// DatabaseFile is the SQLite file; empty means an in-memory database that dies with the process.
	DatabaseFile string
	// Namespace is created at start (with SearchAttributes) when it does not exist yet.
	Namespace        string
	SearchAttributes map[string]enumspb.IndexedValueType
	// IP to bind on; defaults to 127.0.0.1.
	IP       string
	GRPCPort int
	// UIPort 0 picks a free port; a negative UIPort runs no Web UI.
	UIPort int
	// CodecEndpoint is the remote codec server the Web UI decodes payloads with (the part
	// before /decode), empty for none.
	CodecEndpoint string
	// LogFile receives the server's own logs (warnings and above); empty discards them.
	LogFile string
	// Dynamic holds dynamic-config overrides on top of Cairn's defaults (see DefaultDynamicConfig).
	Dynamic map[string]any
	// SQLiteConns is the size of the SQLite connection pool; 0 means DefaultSQLiteConns.
	SQLiteConns int
	// LegacySQLite turns off WAL and Cairn's dynamic-config defaults: the stock dev-server
	// settings, kept so a benchmark can measure the difference in one run.
	LegacySQLite bool
	// Postgres, when set, persists in PostgreSQL with SQL visibility instead of SQLite.
	Postgres *Postgres
	// Shards is the number of history shards (default 1 on SQLite, 4 on PostgreSQL). It is
	// fixed when the store is first set up.
	Shards int32
	// PlainNamespaces are created too, without Cairn's search attributes (tests of the
	// worker's check, and of adding them as an operator would).
	PlainNamespaces []string
}

// DefaultSQLiteConns is the connection pool used with WAL mode. One: with more, connections
// contend for SQLite's single write lock and wait in its busy handler's sleeps, which cost
// more than concurrent reads gain (bench/sqlite: 79 wf/s with 1, 41 with 2, 28 with 8).
const DefaultSQLiteConns = 1

// Server is a running embedded Temporal server (and UI).
type Server struct {
	server    temporal.Server
	ui        *uiserver.Server
	logSync   func() error
	grpcAddr  string
	uiAddr    string
	namespace string
}

// DefaultDynamicConfig raises the ceilings that make a stock SQLite dev server slow under load.
func DefaultDynamicConfig() map[string]any {
	return map[string]any{
		// Several persistence operations per shard at once instead of one: the single shard is
		// the whole server here, so this is the main throughput limit.
		dynamicconfig.ShardIOConcurrency.Key().String(): 8,
		// Keep more workflow state in memory so replays of hot contacts skip SQLite.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key().String(): 8192,
		// Temporal UI and `temporal workflow list` share this budget; the default throttles them.
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key().String(): 100,
		// One task queue partition: with one shard, more partitions only add forwarding hops.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key().String():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key().String(): 1,
	}
}

// Start builds and starts the server; it returns once the frontend accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.Namespace == "" {
		return nil, errors.New("embedded temporal: namespace is required")
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	var err error
	if opts.GRPCPort == 0 {
		if opts.GRPCPort, err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}
	if opts.UIPort == 0 {
		if opts.UIPort, err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}
	httpPort, err := freePort(opts.IP)
	if err != nil {
		return nil, err
	}
	logger, sync, err := newLogger(opts.LogFile)
	if err != nil {
		return nil, err
	}
	conf, err := buildConfig(opts, httpPort)
	if err != nil {
		return nil, err
	}
	dyn := dynamicconfig.StaticClient{}
	if !opts.LegacySQLite {
		for k, v := range DefaultDynamicConfig() {
			dyn[dynamicconfig.MakeKey(k)] = v
		}
	}
	for k, v := range opts.Dynamic {
		dyn[dynamicconfig.MakeKey(k)] = v
	}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range conf.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(net.JoinHostPort(opts.IP, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: build server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("embedded temporal: start server: %w", err)
	}
	s := &Server{
		server:    srv,
		logSync:   sync,
		grpcAddr:  net.JoinHostPort(opts.IP, strconv.Itoa(opts.GRPCPort)),
		namespace: opts.Namespace,
	}
	if opts.UIPort > 0 {
		s.uiAddr = net.JoinHostPort(opts.IP, strconv.Itoa(opts.UIPort))
		s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			Host:                opts.IP,
			Port:                opts.UIPort,
			TemporalGRPCAddress: s.grpcAddr,
			EnableUI:            true,
			DefaultNamespace:    opts.Namespace,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DisableNewsFetch:    true,
			Codec:               uiconfig.Codec{Endpoint: opts.CodecEndpoint},
		}))
		uiErr := make(chan error, 1)
		go func() { uiErr <- s.ui.Start() }()
		if err := waitListening(s.uiAddr, uiErr, 10*time.Second); err != nil {
			s.Stop()
			return nil, fmt.Errorf("embedded temporal: web UI: %w", err)
		}
	}
	return s, nil
}

// GRPCAddress is the frontend address clients and workers dial (host:port).
func (s *Server) GRPCAddress() string { return s.grpcAddr }

// UIURL is the Web UI's base URL, or "" when the UI is off.
func (s *Server) UIURL() string {
	if s.uiAddr == "" {
		return ""
	}
	return "http://" + s.uiAddr
}

// Namespace is the namespace created at start.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the UI and the server and flushes the server log.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	s.server.Stop()
	_ = s.logSync()
}

func buildConfig(opts Options, httpPort int) (*config.Config, error) {
	sqlConf := &config.SQL{PluginName: sqliteplugin.PluginName}
	visConf := sqlConf
	shards := opts.Shards
	if opts.Postgres != nil {
		var err error
		if sqlConf, visConf, err = opts.Postgres.sqlConfigs(); err != nil {
			return nil, err
		}
		if err := setupPostgres(sqlConf, pgSchema); err != nil {
			return nil, err
		}
		if err := setupPostgres(visConf, pgVisibilitySchema); err != nil {
			return nil, err
		}
		if shards == 0 {
			shards = 4
		}
	} else if opts.DatabaseFile == "" {
		sqlConf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		sqlConf.DatabaseName = "cairn-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	} else {
		sqlConf.ConnectAttributes = map[string]string{"mode": "rwc"}
		sqlConf.DatabaseName = opts.DatabaseFile
		if !opts.LegacySQLite {
			// WAL makes a commit an append (no fsync with synchronous=normal, still safe against
			// a process crash); busy_timeout waits out a held lock instead of failing with
			// "database is locked".
			sqlConf.ConnectAttributes["journal_mode"] = "wal"
			sqlConf.ConnectAttributes["busy_timeout"] = "10000"
			sqlConf.ConnectAttributes["synchronous"] = "normal"
			sqlConf.MaxConns = opts.SQLiteConns
			if sqlConf.MaxConns == 0 {
				sqlConf.MaxConns = DefaultSQLiteConns
			}
			sqlConf.MaxIdleConns = sqlConf.MaxConns
		}
		if _, err := os.Stat(opts.DatabaseFile); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(opts.DatabaseFile), 0o755); err != nil {
				return nil, fmt.Errorf("embedded temporal: %w", err)
			}
			if err := sqliteschema.SetupSchema(sqlConf); err != nil {
				return nil, fmt.Errorf("embedded temporal: set up SQLite schema: %w", err)
			}
		}
	}
	// The cluster name must match the one the namespace is created with.
	const clusterName = "active"
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: namespace: %w", err)
	}
	namespaces := []*sqliteschema.NamespaceConfig{ns}
	for _, name := range opts.PlainNamespaces {
		plain, err := sqliteschema.NewNamespaceConfig(clusterName, name, false, nil)
		if err != nil {
			return nil, fmt.Errorf("embedded temporal: namespace: %w", err)
		}
		namespaces = append(namespaces, plain)
	}
	// The server's helper writes namespaces straight into any SQL store before the server
	// starts (no wait for the namespace cache); it is not SQLite's alone.
	if err := sqliteschema.CreateNamespaces(sqlConf, namespaces...); err != nil {
		return nil, fmt.Errorf("embedded temporal: create namespace %q: %w", opts.Namespace, err)
	}
	if shards == 0 {
		shards = 1
	}

	frontend := net.JoinHostPort(opts.IP, strconv.Itoa(opts.GRPCPort))
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = opts.IP
	conf.Persistence.DefaultStore = "sqlite"
	conf.Persistence.VisibilityStore = "sqlite"
	conf.Persistence.NumHistoryShards = shards
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlConf}}
	if opts.Postgres != nil {
		conf.Persistence.DefaultStore, conf.Persistence.VisibilityStore = "postgres", "postgres-visibility"
		conf.Persistence.DataStores = map[string]config.DataStore{"postgres": {SQL: sqlConf}, "postgres-visibility": {SQL: visConf}}
	}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontend,
				HTTPAddress:            net.JoinHostPort(opts.IP, strconv.Itoa(httpPort)),
				ClusterID:              "cairn-dev",
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc config.Service
		svc.RPC.BindOnIP = opts.IP
		if name == "frontend" {
			svc.RPC.GRPCPort = opts.GRPCPort
			svc.RPC.HTTPPort = httpPort
		} else {
			port, err := freePort(opts.IP)
			if err != nil {
				return nil, err
			}
			svc.RPC.GRPCPort = port
		}
		conf.Services[name] = svc
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontend
	return conf, nil
}

func newLogger(path string) (log.Logger, func() error, error) {
	if path == "" {
		return log.NewNoopLogger(), func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded temporal: log file: %w", err)
	}
	sink := &logSink{f: f}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, sink, zapcore.WarnLevel)
	return log.NewZapLogger(zap.New(core)), sink.Close, nil
}

// logSink is the server log file. Some server goroutines still log after Stop returns; once
// closed, the sink drops their lines instead of failing on a closed file.
type logSink struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return len(p), nil
	}
	return s.f.Write(p)
}

func (s *logSink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.f.Sync()
}

func (s *logSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

// freePort finds a port nothing listens on, below the kernel's range of ephemeral ports when
// it can: a port from that range, released, may be taken by any outgoing connection before
// the server binds it (a busy machine makes thousands), and Temporal's services do not
// survive a port they cannot bind.
func freePort(ip string) (int, error) {
	if first := ephemeralStart(); first > lowestPort {
		for range 64 {
			p := lowestPort + rand.IntN(first-lowestPort)
			if l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p))); err == nil {
				_ = l.Close()
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lowestPort is where freePort starts looking, above the ports services usually take.
const lowestPort = 20000

// ephemeralStart is the first port the kernel hands to outgoing connections (Linux's
// ip_local_port_range; 0 where it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func waitListening(addr string, failed <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-failed:
			return err
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %s", addr, limit)
}
