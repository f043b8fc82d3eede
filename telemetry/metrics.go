// Package telemetry is what operators see of Cairn: its Prometheus metrics (every cairn_*
// metric is defined here, beside the Temporal SDK's own), OpenTelemetry tracing configured by
// the standard OTEL_* variables, and the /livez and /readyz probes.
//
// Metrics live in one registry per process: `cairn dev` and the end-to-end tests run a worker
// and a starter in one process, and they count into the same series. No label carries a
// contact id, an email address or any other value a sending system chose; labels are journey
// ids, step kinds, channels, sources and reasons, all bounded by Cairn's configuration.
package telemetry

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every metric this process exposes: Cairn's, the Temporal SDK's, and the Go
// runtime's and process's.
var Registry = prometheus.NewRegistry()

var factory = struct {
	counter   func(prometheus.CounterOpts, []string) *prometheus.CounterVec
	histogram func(prometheus.HistogramOpts, []string) *prometheus.HistogramVec
	counter1  func(prometheus.CounterOpts) prometheus.Counter
	hist1     func(prometheus.HistogramOpts) prometheus.Histogram
}{
	counter1: func(o prometheus.CounterOpts) prometheus.Counter {
		c := prometheus.NewCounter(o)
		Registry.MustRegister(c)
		return c
	},
	hist1: func(o prometheus.HistogramOpts) prometheus.Histogram {
		h := prometheus.NewHistogram(o)
		Registry.MustRegister(h)
		return h
	},
	counter: func(o prometheus.CounterOpts, l []string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(o, l)
		Registry.MustRegister(c)
		return c
	},
	histogram: func(o prometheus.HistogramOpts, l []string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(o, l)
		Registry.MustRegister(h)
		return h
	},
}

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Buckets, in seconds. Accepting an event is a transaction (milliseconds); dispatch lag
// spans a healthy sub-second to a backlog of minutes; calls to providers take up to their
// 15–30 s timeouts; segment questions range from an index probe to a scan of millions.
var (
	acceptBuckets   = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	lagBuckets      = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	providerBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	segmentBuckets  = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// Cairn's metrics. Label values are listed where they are bounded by code.
var (
	// EventsAccepted counts events stored by an ingestion endpoint, by source: segment (the
	// Segment-compatible calls), source (HMAC-signed sources), form, crm (deals), tracking
	// (opens, clicks, unsubscribes) or api (manual starts).
	EventsAccepted = factory.counter(prometheus.CounterOpts{Name: "cairn_events_accepted_total",
		Help: "Events stored by the starter's ingestion endpoints, by source."}, []string{"source"})
	// EventsDuplicate counts messages accepted again with a messageId already stored.
	EventsDuplicate = factory.counter(prometheus.CounterOpts{Name: "cairn_events_duplicate_total",
		Help: "Messages whose messageId was already stored: answered 200, stored nothing."}, []string{"source"})
	// EventsRefused counts ingestion requests refused, by source and reason (the error code
	// of the reply: invalid_request, unauthorized, too_long, body_too_large, rate_limited, …).
	EventsRefused = factory.counter(prometheus.CounterOpts{Name: "cairn_events_refused_total",
		Help: "Ingestion requests refused, by source and reason (the reply's error code)."}, []string{"source", "reason"})
	// AcceptDuration is how long an ingestion request took to be answered 2xx.
	AcceptDuration = factory.histogram(prometheus.HistogramOpts{Name: "cairn_event_accept_duration_seconds",
		Help: "Time from an ingestion request's arrival to its 2xx reply (the event stored), by source.", Buckets: acceptBuckets}, []string{"source"})
	// HTTPRequests counts every request the starter answered, by route pattern and status.
	HTTPRequests = factory.counter(prometheus.CounterOpts{Name: "cairn_http_requests_total",
		Help: "HTTP requests answered by the starter, by method, route pattern and status code."}, []string{"method", "route", "code"})

	// DispatchLag is the time from an event's acceptance to Temporal accepting every call it
	// caused (starts and signals).
	DispatchLag = factory.hist1(prometheus.HistogramOpts{Name: "cairn_dispatch_lag_seconds",
		Help: "Time from an event's acceptance to Temporal accepting all its calls (SignalWithStart, signals).", Buckets: lagBuckets})
	// EventsDispatched counts events whose calls all went through.
	EventsDispatched = factory.counter1(prometheus.CounterOpts{Name: "cairn_events_dispatched_total",
		Help: "Events dispatched: every start and signal they caused accepted by Temporal."})
	// DispatchFailures counts failed dispatch attempts: unreachable (Temporal or the network
	// down), transient (overloaded, timeouts, database connection), event (counts toward the
	// dead letter).
	DispatchFailures = factory.counter(prometheus.CounterOpts{Name: "cairn_dispatch_failures_total",
		Help: "Failed dispatch attempts, by kind: unreachable, transient (retried without limit) or event (counts toward dead-lettering)."}, []string{"kind"})
	// DeadLettered counts events dead-lettered by this process.
	DeadLettered = factory.counter1(prometheus.CounterOpts{Name: "cairn_events_dead_lettered_total",
		Help: "Events dead-lettered after CAIRN_DISPATCH_MAX_ATTEMPTS failures."})

	// RunsStarted counts ContactJourney runs started, by journey (continue-as-new excluded).
	RunsStarted = factory.counter(prometheus.CounterOpts{Name: "cairn_runs_started_total",
		Help: "Journey runs started (not counting continue-as-new), by journey."}, []string{"journey"})
	// Steps counts steps left, by step kind and outcome: done, failed, exited (the exit
	// condition took the contact out) or goal (a goal took it elsewhere).
	Steps = factory.counter(prometheus.CounterOpts{Name: "cairn_steps_total",
		Help: "Journey steps left, by step kind and outcome (done, failed, exited, goal)."}, []string{"kind", "outcome"})
	// Sends counts deliveries by channel (email, sms, notify, audience) and outcome: sent,
	// replayed (an earlier attempt had sent it), rejected (refused for good), failed (to be
	// retried) or not_ready (no provider or no template yet: retried until there is).
	Sends = factory.counter(prometheus.CounterOpts{Name: "cairn_sends_total",
		Help: "Deliveries by channel (email, sms, notify, audience) and outcome (sent, replayed, rejected, failed, not_ready)."}, []string{"channel", "outcome"})
	// ProviderCallDuration times each call to a delivery provider (smtp, sms, notify,
	// audience), by outcome (ok, rejected, error).
	ProviderCallDuration = factory.histogram(prometheus.HistogramOpts{Name: "cairn_provider_call_duration_seconds",
		Help: "Calls to delivery providers (smtp, sms, notify, audience), by outcome (ok, rejected, error).", Buckets: providerBuckets}, []string{"provider", "outcome"})
	// SegmentQueryDuration times segment questions: count (a segment's size), members (a page
	// of its contacts), recheck (one contact's memberships after an event), recheck_all (the
	// hourly re-check of every contact).
	SegmentQueryDuration = factory.histogram(prometheus.HistogramOpts{Name: "cairn_segment_query_duration_seconds",
		Help: "Segment queries by kind: count, members, recheck (one contact after an event), recheck_all (hourly).", Buckets: segmentBuckets}, []string{"query"})
)

// Series alerts watch exist from the start at zero, so that increase() and rate() see their
// first change.
func init() {
	for _, kind := range []string{"unreachable", "transient", "event"} {
		DispatchFailures.WithLabelValues(kind)
	}
	for _, channel := range []string{"email", "sms", "notify", "audience"} {
		for _, outcome := range []string{"sent", "replayed", "rejected", "failed", "not_ready"} {
			Sends.WithLabelValues(channel, outcome)
		}
	}
	for _, source := range []string{"segment", "source", "form", "crm", "tracking", "api"} {
		EventsRefused.WithLabelValues(source, "internal")
	}
}

// Handler serves the registry in Prometheus' text format (or OpenMetrics, when asked).
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry, EnableOpenMetrics: true})
}

// queue reports the dispatch queue's depth and dead letters, read from PostgreSQL when
// scraped (at most every few seconds). The starter sets its reader; a worker reports none.
var queue = &queueCollector{
	pending: prometheus.NewDesc("cairn_dispatch_queue_events", "Events waiting for dispatch (the same figure from every starter: the queue is shared).", nil, nil),
	failed:  prometheus.NewDesc("cairn_dead_letter_events", "Dead-lettered events not yet retried (GET /v1/events?status=failed).", nil, nil),
}

func init() { Registry.MustRegister(queue) }

// WatchQueue makes the registry report the dispatch queue through read (pending and
// dead-lettered events); nil stops it.
func WatchQueue(read func(context.Context) (pending, failed int64, err error)) {
	queue.mu.Lock()
	defer queue.mu.Unlock()
	queue.read, queue.at = read, time.Time{}
}

type queueCollector struct {
	pending, failed *prometheus.Desc

	mu     sync.Mutex
	read   func(context.Context) (int64, int64, error)
	at     time.Time
	values [2]int64
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.pending; ch <- q.failed }

// queueMaxAge is how long a reading of the queue is reused: scrapes by several Prometheus
// servers, or a fast scrape interval, cost one query every few seconds at most.
const queueMaxAge = 5 * time.Second

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.read == nil {
		return
	}
	if time.Since(q.at) > queueMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		p, f, err := q.read(ctx)
		cancel()
		if err != nil {
			// No figure rather than a stale one: a gap in the series is what alerts see.
			return
		}
		q.values, q.at = [2]int64{p, f}, time.Now()
	}
	ch <- prometheus.MustNewConstMetric(q.pending, prometheus.GaugeValue, float64(q.values[0]))
	ch <- prometheus.MustNewConstMetric(q.failed, prometheus.GaugeValue, float64(q.values[1]))
}

// Since observes the seconds since start on a histogram.
func Since(h prometheus.Observer, start time.Time) { h.Observe(time.Since(start).Seconds()) }
