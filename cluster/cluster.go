// Package cluster connects Cairn to a Temporal cluster: the embedded dev server, a
// self-hosted cluster, or Temporal Cloud (API key or mTLS).
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/telemetry"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// Config says how to reach Temporal.
type Config struct {
	Address   string // host:port; TEMPORAL_ADDRESS, default 127.0.0.1:7233
	Namespace string // TEMPORAL_NAMESPACE, default "default"
	APIKey    string // TEMPORAL_API_KEY: Temporal Cloud API key (implies TLS)
	TLSCert   string // TEMPORAL_TLS_CERT: client certificate file for mTLS
	TLSKey    string // TEMPORAL_TLS_KEY: its private key
	TLSCA     string // TEMPORAL_TLS_CA: CA bundle to trust instead of the system's
	TLSServer string // TEMPORAL_TLS_SERVER_NAME: override the name checked on the server's certificate
	// Codec encrypts every payload (DataConverter); nil leaves payloads as plain JSON, which
	// only tests and benchmarks measuring the codec do.
	Codec *codec.Codec
}

// FromEnv reads Config from the environment, with defaults for a local server.
func FromEnv() Config {
	c := Config{
		Address:   os.Getenv("TEMPORAL_ADDRESS"),
		Namespace: os.Getenv("TEMPORAL_NAMESPACE"),
		APIKey:    os.Getenv("TEMPORAL_API_KEY"),
		TLSCert:   os.Getenv("TEMPORAL_TLS_CERT"),
		TLSKey:    os.Getenv("TEMPORAL_TLS_KEY"),
		TLSCA:     os.Getenv("TEMPORAL_TLS_CA"),
		TLSServer: os.Getenv("TEMPORAL_TLS_SERVER_NAME"),
	}
	if c.Address == "" {
		c.Address = "127.0.0.1:7233"
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	return c
}

// Options builds SDK client options from the config.
func (c Config) Options(logger *slog.Logger) (client.Options, error) {
	opts := client.Options{HostPort: c.Address, Namespace: c.Namespace}
	if c.Namespace == "" {
		opts.Namespace = "default"
	}
	if logger != nil {
		opts.Logger = sdklog.NewStructuredLogger(logger)
	}
	if c.Codec != nil {
		opts.DataConverter, opts.FailureConverter = DataConverter(c.Codec), FailureConverter(c.Codec)
	}
	// The SDK's metrics go to the process's Prometheus registry; its spans, when tracing is
	// on, continue the trace of the request that caused each call.
	opts.MetricsHandler = telemetry.TemporalMetrics()
	if ic := telemetry.TemporalTracing(); ic != nil {
		opts.Interceptors = append(opts.Interceptors, ic)
	}
	if c.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(c.APIKey)
	}
	if c.APIKey != "" || c.TLSCert != "" || c.TLSCA != "" {
		tc := &tls.Config{ServerName: c.TLSServer, MinVersion: tls.VersionTLS12}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			return opts, fmt.Errorf("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
		}
		if c.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
			if err != nil {
				return opts, fmt.Errorf("load Temporal client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		if c.TLSCA != "" {
			pem, err := os.ReadFile(c.TLSCA)
			if err != nil {
				return opts, fmt.Errorf("read TEMPORAL_TLS_CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return opts, fmt.Errorf("TEMPORAL_TLS_CA %s holds no PEM certificate", c.TLSCA)
			}
			tc.RootCAs = pool
		}
		opts.ConnectionOptions.TLS = tc
	}
	return opts, nil
}

// Dial connects now, failing if the cluster cannot be reached.
func Dial(ctx context.Context, c Config, logger *slog.Logger) (client.Client, error) {
	opts, err := c.Options(logger)
	if err != nil {
		return nil, err
	}
	cl, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", c.Address, opts.Namespace, err)
	}
	return cl, nil
}

// Lazy returns a client that connects on first use, so a starter accepts events while
// Temporal is down and dispatches them once it is back.
func Lazy(c Config, logger *slog.Logger) (client.Client, error) {
	opts, err := c.Options(logger)
	if err != nil {
		return nil, err
	}
	return client.NewLazyClient(opts)
}

// CheckSearchAttributes fails with the commands that fix it when the namespace lacks any of
// Cairn's custom search attributes.
func CheckSearchAttributes(ctx context.Context, cl client.Client, namespace string) error {
	resp, err := cl.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	var missing []string
	for name, typ := range contract.SearchAttributes {
		got, ok := resp.GetCustomAttributes()[name]
		if !ok || got != typ {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	var cmds []string
	for _, name := range missing {
		// The enum's name is the CLI's type name: Keyword, Int, KeywordList.
		typ := contract.SearchAttributes[name].String()
		cmds = append(cmds, fmt.Sprintf("  temporal operator search-attribute create --namespace %s --name %s --type %s", namespace, name, typ))
	}
	return fmt.Errorf("namespace %s is missing Cairn's search attributes %s (or has them with another type); add them with:\n%s\n(on Temporal Cloud: tcld namespace search-attributes add)",
		namespace, strings.Join(missing, ", "), strings.Join(cmds, "\n"))
}
