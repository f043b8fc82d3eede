// Package worker runs a Temporal worker for Cairn: ContactJourney and its activities on the
// cairn-journeys task queue.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/provider"
	"github.com/cairnhq/cairn/workflows"
)

// Config is what a worker needs.
type Config struct {
	Temporal    cluster.Config
	DatabaseURL string
	// Codec encrypts the payloads the worker writes (CAIRN_CODEC_*).
	Codec codec.Config
	// SMTP, when set, sends email (CAIRN_SMTP_*); PublicURL (CAIRN_PUBLIC_URL) is the
	// starter's address as recipients reach it, for tracking links signed with TrackingKey
	// (CAIRN_TRACKING_KEY).
	SMTP        *email.SMTPConfig
	PublicURL   string
	TrackingKey string
	// TrackingExpiry (CAIRN_TRACKING_*_TTL) is signed into each link; the zero value never expires.
	TrackingExpiry email.Expiry
	// Delivery providers (CAIRN_SMS_*, CAIRN_NOTIFY_URL, CAIRN_AUDIENCE_*); nil is "not configured".
	SMS      *provider.SMS
	Notify   *provider.Notify
	Audience *provider.Audience
	Logger   *slog.Logger
	// Ready, when set, is closed once the worker polls its task queue.
	Ready chan<- struct{}
}

// ConfigFromEnv reads the worker's configuration from the environment.
func ConfigFromEnv() (Config, error) {
	c := Config{Temporal: cluster.FromEnv(), DatabaseURL: os.Getenv("DATABASE_URL"),
		PublicURL: os.Getenv("CAIRN_PUBLIC_URL"), TrackingKey: os.Getenv("CAIRN_TRACKING_KEY"),
		Notify: provider.NotifyFromEnv(), Audience: provider.AudienceFromEnv()}
	if smtp, ok := email.SMTPFromEnv(); ok {
		c.SMTP = &smtp
	}
	var err error
	if c.Codec, err = codec.ConfigFromEnv(); err != nil {
		return c, err
	}
	if c.TrackingExpiry, err = email.ExpiryFromEnv(); err != nil {
		return c, err
	}
	c.SMS, err = provider.SMSFromEnv()
	return c, err
}

// mail builds the email side of the activities, or nil when no SMTP server is configured.
func (c Config) mail() (*activities.Mail, error) {
	if c.SMTP == nil {
		return nil, nil
	}
	sender, err := email.NewSMTP(*c.SMTP)
	if err != nil {
		return nil, err
	}
	if c.TrackingKey == "" {
		return nil, fmt.Errorf("CAIRN_TRACKING_KEY is not set: tracking and unsubscribe links must be signed")
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("CAIRN_PUBLIC_URL %q is not an http(s) URL: tracking links point there", c.PublicURL)
	}
	return &activities.Mail{
		Sender:  sender,
		Tracker: email.Tracker{Signer: email.Signer{Key: []byte(c.TrackingKey)}, BaseURL: c.PublicURL, Expiry: c.TrackingExpiry},
		Domain:  u.Hostname(),
	}, nil
}

// Register adds Cairn's workflows and activities to w; tests and replayers use it too.
func Register(w sdkworker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.ContactJourney, workflow.RegisterOptions{Name: contract.WorkflowType})
	w.RegisterWorkflowWithOptions(workflows.CartWatch, workflow.RegisterOptions{Name: contract.CartWatchType})
	w.RegisterWorkflowWithOptions(workflows.DateScheduler, workflow.RegisterOptions{Name: contract.DateSchedulerType})
	w.RegisterWorkflowWithOptions(workflows.CampaignFiring, workflow.RegisterOptions{Name: contract.CampaignFiringType})
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
	mail, err := cfg.mail()
	if err != nil {
		return fmt.Errorf("worker: email: %w", err)
	}
	if mail == nil {
		logger.Warn("no SMTP server configured (CAIRN_SMTP_HOST): send_email steps will fail until one is")
	}
	pool, err := crm.Connect(ctx, cfg.DatabaseURL, 0)
	if err != nil {
		return fmt.Errorf("worker: DATABASE_URL: %w", err)
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if cfg.Temporal.Codec, err = cfg.Codec.Build(pool, logger); err != nil {
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
	if err := ensureDateSchedule(ctx, cl); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	acts := &activities.Activities{DB: pool, Mail: mail, SMS: cfg.SMS, Notifier: cfg.Notify, Audience: cfg.Audience}
	return serve(ctx, cl, acts, cfg.Ready, logger)
}

func serve(ctx context.Context, cl client.Client, acts *activities.Activities, ready chan<- struct{}, logger *slog.Logger) error {
	w := sdkworker.New(cl, contract.TaskQueue, sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{&redactor{}}})
	Register(w, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	logger.Info("worker polling", "task_queue", contract.TaskQueue)
	if ready != nil {
		close(ready)
	}
	<-ctx.Done()
	w.Stop()
	return nil
}

// ensureDateSchedule creates the hourly schedule behind date_field triggers once; every
// worker asks, the first one creates it.
func ensureDateSchedule(ctx context.Context, cl client.Client) error {
	_, err := cl.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   contract.DateScheduleID,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}}},
		Action: &client.ScheduleWorkflowAction{
			ID: contract.DateScheduleID, Workflow: contract.DateSchedulerType, TaskQueue: contract.TaskQueue,
		},
		Overlap:            enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		TriggerImmediately: true,
	})
	if err != nil && !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create schedule %s: %w", contract.DateScheduleID, err)
	}
	return nil
}
