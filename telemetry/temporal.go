package telemetry

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/contract"
)

// sdkBuckets are the Temporal SDK's latency buckets (seconds): task latencies from a
// millisecond, schedule-to-start up to minutes of backlog, long polls up to their 70 s.
var sdkBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

var sdkMetrics = sync.OnceValue(func() client.MetricsHandler {
	exp, err := prometheus.New(prometheus.WithRegisterer(Registry), prometheus.WithoutTargetInfo(), prometheus.WithoutScopeInfo())
	if err != nil {
		// Only a second registration of the same collector fails, which the Once rules out.
		panic("telemetry: Temporal SDK metrics: " + err.Error())
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(sdkView))
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("temporal-sdk-go"),
		// Counters are monotonic sums, exported as Prometheus counters (…_total).
		UseMonotonicCounters: true,
		OnError:              func(error) {},
	})
})

// sdkView gives the SDK's instruments help text (Prometheus wants some) and latency buckets
// in seconds (OpenTelemetry's default buckets are for milliseconds).
func sdkView(i sdkmetric.Instrument) (sdkmetric.Stream, bool) {
	s := sdkmetric.Stream{Name: i.Name, Description: i.Description, Unit: i.Unit}
	if s.Description == "" {
		s.Description = "Temporal Go SDK metric " + i.Name + " (see Temporal's SDK metrics reference)."
	}
	if i.Kind == sdkmetric.InstrumentKindHistogram && i.Unit == "s" {
		s.Aggregation = sdkmetric.AggregationExplicitBucketHistogram{Boundaries: sdkBuckets}
	}
	return s, true
}

// TemporalMetrics is the metrics handler for Temporal clients and workers: the SDK's own
// metrics (temporal_request_total, temporal_workflow_task_schedule_to_start_latency_seconds,
// temporal_sticky_cache_size, temporal_num_pollers, …) under their SDK names, in Registry.
// It is nil (the SDK records nothing) while SetSDKMetrics(false) holds.
func TemporalMetrics() client.MetricsHandler {
	if sdkMetricsOff.Load() {
		return nil
	}
	return sdkMetrics()
}

var sdkMetricsOff atomic.Bool

// SetSDKMetrics turns the SDK's metrics off (or back on) for clients made from now on:
// benchmarks measure what they cost.
func SetSDKMetrics(on bool) { sdkMetricsOff.Store(!on) }

// TemporalTracing is the Temporal SDK's OpenTelemetry interceptor when tracing is on (nil
// otherwise): client calls (SignalWithStart, signals) start spans and carry their context to
// the workflow, whose activities' spans follow.
func TemporalTracing() interceptor.ClientInterceptor {
	if !TracingEnabled() {
		return nil
	}
	return temporalTracer()
}

var temporalTracer = sync.OnceValue(func() interceptor.ClientInterceptor {
	// The tracer is taken from the global provider, which Setup sets before any client exists.
	ic, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{DisableQueryTracing: true})
	if err != nil {
		panic("telemetry: Temporal tracing interceptor: " + err.Error())
	}
	return ic
})

// WorkerInterceptor counts runs as they start (cairn_runs_started_total). It reads nothing but
// the run's input and changes nothing in it; during replay it counts nothing.
func WorkerInterceptor() interceptor.WorkerInterceptor { return &runCounter{} }

type runCounter struct {
	interceptor.WorkerInterceptorBase
}

func (*runCounter) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &runInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type runInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (r *runInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	if workflow.GetInfo(ctx).WorkflowType.Name == contract.WorkflowType && !workflow.IsReplaying(ctx) && len(in.Args) == 1 {
		if input, ok := in.Args[0].(contract.Input); ok && input.Resume == nil {
			RunsStarted.WithLabelValues(input.Journey.ID).Inc()
		}
	}
	return r.Next.ExecuteWorkflow(ctx, in)
}

// Step outcomes, the values of cairn_steps_total's outcome label.
const (
	StepDone   = "done"
	StepFailed = "failed"
	StepExited = "exited"
	StepGoal   = "goal"
)

// StepLeft counts a step a run left, by kind and outcome. Workflow code calls it; it counts
// only when the run is not replaying, so a step is counted once however often it is replayed.
func StepLeft(ctx workflow.Context, kind, outcome string) {
	if workflow.IsReplaying(ctx) {
		return
	}
	Steps.WithLabelValues(kind, outcome).Inc()
}
