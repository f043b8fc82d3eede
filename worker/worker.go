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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/provider"
	"github.com/cairnhq/cairn/telemetry"
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
	// Policy is the default send policy (CAIRN_EMAIL_CAPS, CAIRN_EMAIL_QUIET_HOURS, and the
	// same for SMS and NOTIFY), which journeys override per channel; nil: none.
	Policy *journey.Policy
	Logger *slog.Logger
	// Ready, when set, is closed once the worker polls its task queue.
	Ready chan<- struct{}
	// MetricsAddr (CAIRN_METRICS_ADDR), when set, serves /metrics, /livez and /readyz.
	MetricsAddr string
	// Tuning of the Temporal worker and the PostgreSQL pool (CAIRN_WORKER_*, CAIRN_DB_MAX_CONNS);
	// zero values keep the defaults.
	Tuning Tuning
}

// Tuning sizes a worker. Zero fields keep the defaults: the SDK's, DefaultStopTimeout and
// DefaultDBMaxConns.
type Tuning struct {
	Activities      int           // CAIRN_WORKER_ACTIVITIES: activities run at once (SDK default 1,000)
	WorkflowTasks   int           // CAIRN_WORKER_WORKFLOW_TASKS: workflow tasks run at once (SDK default 1,000)
	LocalActivities int           // CAIRN_WORKER_LOCAL_ACTIVITIES: local activities run at once (SDK default 1,000)
	ActivityPollers int           // CAIRN_WORKER_ACTIVITY_POLLERS: activity task pollers (SDK default 2)
	WorkflowPollers int           // CAIRN_WORKER_WORKFLOW_POLLERS: workflow task pollers (SDK default 2)
	StickyCache     int           // CAIRN_WORKER_STICKY_CACHE: runs kept in memory between tasks (SDK default 10,000)
	StopTimeout     time.Duration // CAIRN_WORKER_STOP_TIMEOUT: how long running activities may finish on stop (default 30s)
	DBMaxConns      int           // CAIRN_DB_MAX_CONNS: PostgreSQL pool size (default 16)
}

// TuningFromEnv reads the CAIRN_WORKER_* variables and CAIRN_DB_MAX_CONNS.
func TuningFromEnv() (Tuning, error) {
	var t Tuning
	for _, v := range []struct {
		name string
		dst  *int
	}{{"CAIRN_WORKER_ACTIVITIES", &t.Activities}, {"CAIRN_WORKER_WORKFLOW_TASKS", &t.WorkflowTasks},
		{"CAIRN_WORKER_LOCAL_ACTIVITIES", &t.LocalActivities}, {"CAIRN_WORKER_ACTIVITY_POLLERS", &t.ActivityPollers},
		{"CAIRN_WORKER_WORKFLOW_POLLERS", &t.WorkflowPollers}, {"CAIRN_WORKER_STICKY_CACHE", &t.StickyCache},
		{"CAIRN_DB_MAX_CONNS", &t.DBMaxConns}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return t, fmt.Errorf("%s %q is not a positive whole number", v.name, s)
			}
			*v.dst = n
		}
	}
	if s := os.Getenv("CAIRN_WORKER_STOP_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return t, fmt.Errorf("CAIRN_WORKER_STOP_TIMEOUT %q is not a duration (e.g. 30s, 2m)", s)
		}
		t.StopTimeout = d
	}
	return t, nil
}

// DefaultStopTimeout is how long a stopping worker lets running activities finish: an SMTP
// call or a provider call with its retries fits in it.
const DefaultStopTimeout = 30 * time.Second

// DefaultDBMaxConns is the worker's PostgreSQL pool: activities are short transactions, and
// more connections than this on a few cores only queue inside PostgreSQL.
const DefaultDBMaxConns = 16

// options are the SDK worker options the tuning asks for.
func (t Tuning) options() sdkworker.Options {
	stop := t.StopTimeout
	if stop == 0 {
		stop = DefaultStopTimeout
	}
	return sdkworker.Options{
		MaxConcurrentActivityExecutionSize:      t.Activities,
		MaxConcurrentWorkflowTaskExecutionSize:  t.WorkflowTasks,
		MaxConcurrentLocalActivityExecutionSize: t.LocalActivities,
		MaxConcurrentActivityTaskPollers:        t.ActivityPollers,
		MaxConcurrentWorkflowTaskPollers:        t.WorkflowPollers,
		WorkerStopTimeout:                       stop,
		Interceptors:                            []interceptor.WorkerInterceptor{telemetry.WorkerInterceptor()},
	}
}

// ConfigFromEnv reads the worker's configuration from the environment.
func ConfigFromEnv() (Config, error) {
	c := Config{Temporal: cluster.FromEnv(), DatabaseURL: os.Getenv("DATABASE_URL"),
		PublicURL: os.Getenv("CAIRN_PUBLIC_URL"), TrackingKey: os.Getenv("CAIRN_TRACKING_KEY"),
		Notify: provider.NotifyFromEnv(), Audience: provider.AudienceFromEnv(), MetricsAddr: os.Getenv("CAIRN_METRICS_ADDR")}
	if smtp, ok := email.SMTPFromEnv(); ok {
		c.SMTP = &smtp
	}
	var err error
	if c.Tuning, err = TuningFromEnv(); err != nil {
		return c, err
	}
	if c.Codec, err = codec.ConfigFromEnv(); err != nil {
		return c, err
	}
	if c.TrackingExpiry, err = email.ExpiryFromEnv(); err != nil {
		return c, err
	}
	if c.Policy, err = PolicyFromEnv(); err != nil {
		return c, err
	}
	c.SMS, err = provider.SMSFromEnv()
	return c, err
}

// PolicyFromEnv reads the default send policy: CAIRN_<CHANNEL>_CAPS ("2/24h,5/7d": at most 2
// in any 24 hours and 5 in any 7 days) and CAIRN_<CHANNEL>_QUIET_HOURS ("21:00-08:00", in
// the contact's time zone) for EMAIL, SMS and NOTIFY. Nothing set: nil, no policy.
func PolicyFromEnv() (*journey.Policy, error) {
	p := &journey.Policy{}
	set := false
	for _, ch := range journey.Channels {
		name := "CAIRN_" + strings.ToUpper(ch)
		caps, err := journey.ParseCaps(os.Getenv(name + "_CAPS"))
		if err != nil {
			return nil, fmt.Errorf("%s_CAPS: %w", name, err)
		}
		quiet, err := journey.ParseQuietHours(os.Getenv(name + "_QUIET_HOURS"))
		if err != nil {
			return nil, fmt.Errorf("%s_QUIET_HOURS: %w", name, err)
		}
		if len(caps) == 0 && quiet == nil {
			continue
		}
		set = true
		cp := &journey.ChannelPolicy{Caps: caps, QuietHours: quiet}
		switch ch {
		case journey.ChannelEmail:
			p.Email = cp
		case journey.ChannelSMS:
			p.SMS = cp
		case journey.ChannelNotify:
			p.Notify = cp
		}
	}
	if !set {
		return nil, nil
	}
	return p, nil
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
	pcfg, err := crm.PoolConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("worker: DATABASE_URL: %w", err)
	}
	if pcfg.MaxConns < DefaultDBMaxConns {
		pcfg.MaxConns = DefaultDBMaxConns
	}
	if cfg.Tuning.DBMaxConns > 0 {
		pcfg.MaxConns = int32(cfg.Tuning.DBMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
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
	acts := &activities.Activities{DB: pool, Mail: mail, SMS: cfg.SMS, Notifier: cfg.Notify, Audience: cfg.Audience, Policy: cfg.Policy}
	if cfg.Tuning.StickyCache > 0 {
		// Process-wide in the SDK: it must be set before the worker starts.
		sdkworker.SetStickyWorkflowCacheSize(cfg.Tuning.StickyCache)
	}
	var polling atomic.Bool
	if cfg.MetricsAddr != "" {
		msrv, err := telemetry.Serve(cfg.MetricsAddr, readyChecks(pool, cl, &polling)...)
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		defer msrv.Close()
		logger.Info("worker metrics listening", "addr", msrv.Addr)
	}
	return serve(ctx, cl, acts, cfg, &polling, logger)
}

// readyChecks are the worker's readiness: PostgreSQL answers, Temporal answers, and the
// worker polls its task queue.
func readyChecks(pool *pgxpool.Pool, cl client.Client, polling *atomic.Bool) []telemetry.Check {
	return []telemetry.Check{
		{Name: "database", Run: func(ctx context.Context) error { return pool.Ping(ctx) }},
		{Name: "temporal", Run: func(ctx context.Context) error {
			_, err := cl.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
		{Name: "polling", Run: func(context.Context) error {
			if !polling.Load() {
				return errors.New("the worker is not polling its task queue")
			}
			return nil
		}},
	}
}

func serve(ctx context.Context, cl client.Client, acts *activities.Activities, cfg Config, polling *atomic.Bool, logger *slog.Logger) error {
	opts := cfg.Tuning.options()
	opts.Interceptors = append([]interceptor.WorkerInterceptor{&redactor{}}, opts.Interceptors...)
	w := sdkworker.New(cl, contract.TaskQueue, opts)
	Register(w, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	polling.Store(true)
	logger.Info("worker polling", "task_queue", contract.TaskQueue)
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	<-ctx.Done()
	polling.Store(false)
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
