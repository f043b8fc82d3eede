// Package cli defines the cairn command's subcommands; each reads its configuration and
// calls a package's Run.
package cli

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/starter"
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
	root.AddCommand(devCmd(), workerCmd(), starterCmd(), journeysCmd(), codecCmd())
	return root
}

func logger() *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("CAIRN_LOG_LEVEL"), "debug") {
		level = slog.LevelDebug
	} else if strings.EqualFold(os.Getenv("CAIRN_LOG_LEVEL"), "warn") {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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
			return dev.Run(cmd.Context(), cfg)
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
			return worker.Run(cmd.Context(), cfg)
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
			return starter.Run(cmd.Context(), cfg)
		},
	}
}
