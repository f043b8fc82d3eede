// Package worker runs a Temporal worker for Cairn: ContactJourney and its activities on the
// cairn-journeys task queue.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/workflows"
)

// Config is what a worker needs.
type Config struct {
	Temporal    cluster.Config
	DatabaseURL string
	Logger      *slog.Logger
	// Ready, when set, is closed once the worker polls its task queue.
	Ready chan<- struct{}
}

// ConfigFromEnv reads the worker's configuration from the environment.
func ConfigFromEnv() Config {
	return Config{Temporal: cluster.FromEnv(), DatabaseURL: os.Getenv("DATABASE_URL")}
}

// Register adds Cairn's workflows and activities to w; tests and replayers use it too.
func Register(w sdkworker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.ContactJourney, workflow.RegisterOptions{Name: workflows.WorkflowType})
	w.RegisterActivity(acts)
}

// Run connects to PostgreSQL and Temporal, checks the search attributes, and processes
// journeys until ctx is cancelled; then it stops polling and lets running activities finish.
func Run(ctx context.Context, cfg Config) error {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("worker: DATABASE_URL is not set")
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("worker: database: %w", err)
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	cl, err := cluster.Dial(ctx, cfg.Temporal, logger.With("component", "temporal-sdk"))
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer cl.Close()
	if err := cluster.CheckSearchAttributes(ctx, cl, cfg.Temporal.Namespace); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return serve(ctx, cl, pool, cfg.Ready, logger)
}

func serve(ctx context.Context, cl client.Client, pool *pgxpool.Pool, ready chan<- struct{}, logger *slog.Logger) error {
	w := sdkworker.New(cl, workflows.TaskQueue, sdkworker.Options{})
	Register(w, &activities.Activities{Store: crm.New(pool)})
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	logger.Info("worker polling", "task_queue", workflows.TaskQueue)
	if ready != nil {
		close(ready)
	}
	<-ctx.Done()
	w.Stop()
	return nil
}
