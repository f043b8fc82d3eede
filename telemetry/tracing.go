package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names Cairn's own spans' tracer.
const InstrumentationName = "github.com/cairnhq/cairn"

var (
	tracing   atomic.Bool
	setupMu   sync.Mutex
	installed bool
)

// TracingEnabled reports whether this process exports traces.
func TracingEnabled() bool { return tracing.Load() }

// tracingWanted reads the standard variables: traces go out when an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER
// is otlp, unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
func tracingWanted() (bool, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false, nil
	}
	switch exp := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER %q: Cairn exports traces with otlp (or none)", exp)
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
}

// Setup turns tracing on when the OTEL_* variables ask for it: an OTLP exporter (protocol
// from OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf, the
// default, or grpc; endpoint, headers, timeout and TLS from the exporters' own OTEL_EXPORTER_OTLP_*
// variables), the sampler from OTEL_TRACES_SAMPLER, the resource from OTEL_SERVICE_NAME
// (default service) and OTEL_RESOURCE_ATTRIBUTES, and W3C trace context propagation. It is
// called once per process, before any Temporal client is made; later calls do nothing. The
// returned function flushes and stops the exporter.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	want, err := tracingWanted()
	if err != nil || !want {
		return noop, err
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return noop, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: use http/protobuf or grpc", protocol)
	}
	if err != nil {
		return noop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return noop, fmt.Errorf("tracing: resource: %w", err)
	}
	return install(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))), nil
}

func install(tp *sdktrace.TracerProvider) func(context.Context) error {
	setupMu.Lock()
	defer setupMu.Unlock()
	if installed {
		_ = tp.Shutdown(context.Background())
		return func(context.Context) error { return nil }
	}
	installed = true
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	tracing.Store(true)
	return tp.Shutdown
}

// SetTracing turns span creation off (or back on, once Setup installed a provider) for the HTTP handlers, Temporal clients and dispatchers made from now on, and for
// every dispatch and provider call: benchmarks compare the two in one process.
func SetTracing(on bool) {
	setupMu.Lock()
	defer setupMu.Unlock()
	tracing.Store(on && installed)
}

// Tracer is the tracer of Cairn's own spans (HTTP requests, dispatch, SMTP).
func Tracer() trace.Tracer { return otel.Tracer(InstrumentationName) }

// WithTraceParent returns ctx carrying the remote span context of a traceparent an event
// stored (crm keeps the recording span's), so a span started from it is that span's child; a
// malformed or empty value leaves ctx as it is.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
