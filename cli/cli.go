// Package cli defines the cairn command's subcommands; each reads its configuration and
// calls a package's Run.
package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/server/common/dynamicconfig"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/dev/embedded"
	"github.com/cairnhq/cairn/starter"
	"github.com/cairnhq/cairn/telemetry"
	"github.com/cairnhq/cairn/worker"
)

// Root returns the cairn command.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "Cairn runs marketing-automation journeys as durable Temporal workflows",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(devCmd(), workerCmd(), starterCmd(), journeysCmd(), codecCmd(), temporalServerCmd())
	return root
}

func devCmd() *cobra.Command {
	var cfg dev.Config
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: Temporal + UI, PostgreSQL, worker, starter, example journeys (reads DATABASE_URL, CAIRN_HTTP_ADDR, CAIRN_CART_IDLE, CAIRN_LOG_LEVEL)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.DatabaseURL = os.Getenv("DATABASE_URL")
			idle, set, err := starter.CartIdleFromEnv()
			if err != nil {
				return err
			}
			if set {
				cfg.CartIdle = idle
				if idle == 0 {
					cfg.CartIdle = -1 // off
				}
			}
			if v := os.Getenv("CAIRN_HTTP_ADDR"); v != "" && !cmd.Flags().Changed("http") {
				cfg.HTTPAddr = v
			}
			if os.Getenv("CAIRN_LOG_LEVEL") == "" {
				// dev prints its banner on stdout; routine info logs would bury it.
				os.Setenv("CAIRN_LOG_LEVEL", "warn")
			}
			cfg.Logger = logger()
			return traced(cmd, "cairn-dev", func() error { return dev.Run(cmd.Context(), cfg) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.StateDir, "state", ".cairn", "folder holding Temporal's and PostgreSQL's data and the dev keys")
	f.BoolVar(&cfg.Fresh, "fresh", false, "delete the state folder first: start with no contacts and no journeys in flight")
	f.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8080", "starter HTTP address (CAIRN_HTTP_ADDR)")
	f.IntVar(&cfg.TemporalPort, "temporal-port", 7233, "Temporal gRPC port")
	f.IntVar(&cfg.UIPort, "ui-port", 8233, "Temporal Web UI port")
	f.IntVar(&cfg.SMTPPort, "smtp-port", 1025, "mail catcher SMTP port")
	f.IntVar(&cfg.MailPort, "mail-port", 8025, "mail catcher web page port")
	f.StringVar(&cfg.ExamplesDir, "journeys", "examples", "folder of journeys to apply at start")
	return cmd
}

func workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run a Temporal worker for ContactJourney (TEMPORAL_*, DATABASE_URL)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := worker.ConfigFromEnv()
			if err != nil {
				return err
			}
			cfg.Logger = logger()
			return traced(cmd, "cairn-worker", func() error { return worker.Run(cmd.Context(), cfg) })
		},
	}
}

func starterCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "starter",
		Short: "Run the trigger service: HTTP API and dispatcher (CAIRN_*, TEMPORAL_*, DATABASE_URL)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := starter.ConfigFromEnv()
			if err != nil {
				return err
			}
			cfg.Logger = logger()
			return traced(cmd, "cairn-starter", func() error { return starter.Run(cmd.Context(), cfg) })
		},
	}
}

// temporalServerCmd runs a Temporal server persisted in PostgreSQL (SQL visibility), as a
// production-shaped cluster for tests and for trying Cairn's processes side by side. Hidden:
// production runs a real Temporal cluster or Temporal Cloud.
func temporalServerCmd() *cobra.Command {
	var opts embedded.Options
	var pg embedded.Postgres
	cmd := &cobra.Command{
		Use:    "temporal-server",
		Short:  "Run a Temporal server on PostgreSQL (tests and trying only)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pg.URL == "" {
				return fmt.Errorf("--postgres is required: a PostgreSQL URL whose role may create databases")
			}
			opts.Postgres = &pg
			opts.SearchAttributes = contract.SearchAttributes
			// Search attributes added by an operator show up within a second.
			opts.Dynamic = map[string]any{dynamicconfig.NamespaceCacheRefreshInterval.Key().String(): time.Second}
			srv, err := embedded.Start(opts)
			if err != nil {
				return err
			}
			defer srv.Stop()
			fmt.Fprintf(cmd.OutOrStdout(), "Temporal ready at %s (namespace %s)\n", srv.GRPCAddress(), srv.Namespace())
			<-cmd.Context().Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&pg.URL, "postgres", "", "PostgreSQL URL (a role that may create databases)")
	f.StringVar(&pg.Database, "db", "temporal", "history database")
	f.StringVar(&pg.VisibilityDatabase, "visibility-db", "temporal_visibility", "visibility database")
	f.StringVar(&opts.IP, "ip", "127.0.0.1", "address to bind")
	f.IntVar(&opts.GRPCPort, "port", 7233, "frontend gRPC port")
	f.IntVar(&opts.UIPort, "ui-port", -1, "Web UI port (negative: none)")
	f.Int32Var(&opts.Shards, "shards", 4, "history shards (fixed when the databases are first set up)")
	f.StringVar(&opts.Namespace, "namespace", "default", "namespace created with Cairn's search attributes")
	f.StringSliceVar(&opts.PlainNamespaces, "plain-namespace", nil, "namespaces created without Cairn's search attributes")
	f.StringVar(&opts.LogFile, "log", "", "file for the server's warnings and errors")
	return cmd
}

// traced runs a process with tracing set up from the OTEL_* variables (off unless they ask
// for it), and flushes the spans still buffered when it stops.
func traced(cmd *cobra.Command, service string, run func() error) error {
	shutdown, err := telemetry.Setup(cmd.Context(), service)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdown(ctx)
	}()
	return run()
}
