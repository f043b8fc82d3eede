package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger builds the logger every Cairn process logs with: format text or json
// (CAIRN_LOG_FORMAT), level debug, info or warn (CAIRN_LOG_LEVEL). Every line carries the
// trace and span ids of the context it was logged with, and no line carries an email
// address: any that an error message or a value brings along is replaced by [email].
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lv := slog.LevelInfo
	switch strings.ToLower(level) {
	case "", "info":
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("CAIRN_LOG_LEVEL %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("CAIRN_LOG_FORMAT %q is not text or json", format)
	}
	return slog.New(&redacting{next: h}), nil
}

func logger() *slog.Logger {
	l, err := NewLogger(os.Stderr, os.Getenv("CAIRN_LOG_FORMAT"), os.Getenv("CAIRN_LOG_LEVEL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(2)
	}
	return l
}

// emailPattern finds email addresses in free text (error messages from SMTP servers and
// providers quote the recipient).
var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)

func scrub(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return emailPattern.ReplaceAllString(s, "[email]")
}

// redacting scrubs email addresses from messages and values and adds trace ids.
type redacting struct{ next slog.Handler }

func (h *redacting) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *redacting) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(a))
		return true
	})
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		out.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.next.Handle(ctx, out)
}

func (h *redacting) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = scrubAttr(a)
	}
	return &redacting{next: h.next.WithAttrs(clean)}
}

func (h *redacting) WithGroup(name string) slog.Handler {
	return &redacting{next: h.next.WithGroup(name)}
}

func scrubAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = scrubAttr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, scrub(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, scrub(x.String()))
		case []byte:
			return slog.String(a.Key, scrub(string(x)))
		default:
			// Maps, slices, structs: written as the handler would, then scrubbed.
			return slog.String(a.Key, scrub(fmt.Sprint(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
