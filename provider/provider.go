// Package provider holds Cairn's HTTP delivery providers: SMS (Twilio's Messages API), team
// notifications (Slack-style incoming webhooks) and ad custom audiences (Facebook Marketing
// API). Each posts with a timeout, passes the idempotency key where the API takes one, and
// retries 5xx and 429 replies with backoff, honouring Retry-After.
package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cairnhq/cairn/telemetry"
)

// Rejected is a reply no retry will change (a 4xx other than 429): the step fails with the
// provider's message.
type Rejected struct {
	Status  int
	Message string
}

func (e *Rejected) Error() string {
	return fmt.Sprintf("provider refused the request (HTTP %d): %s", e.Status, e.Message)
}

// Client sends requests with retries. The zero value is usable.
type Client struct {
	HTTP *http.Client
	// Attempts bounds the tries within one call (default 4); past it the error is returned
	// as retryable and Temporal's retry policy takes over.
	Attempts int
	// Backoff is the first wait between tries (default 500ms), doubled each time.
	Backoff time.Duration
	// MaxWait caps a Retry-After the provider asks for (default 30s).
	MaxWait time.Duration
}

func (c *Client) defaults() (*http.Client, int, time.Duration, time.Duration) {
	h, n, b, m := c.HTTP, c.Attempts, c.Backoff, c.MaxWait
	if h == nil {
		h = &http.Client{Timeout: 15 * time.Second}
	}
	if n == 0 {
		n = 4
	}
	if b == 0 {
		b = 500 * time.Millisecond
	}
	if m == 0 {
		m = 30 * time.Second
	}
	return h, n, b, m
}

// Do sends the request built by build (called once per try, so bodies are fresh) and returns
// the body of the first 2xx reply. errMessage extracts the provider's message from an error body.
func (c *Client) Do(ctx context.Context, build func() (*http.Request, error), errMessage func([]byte) string) ([]byte, error) {
	h, attempts, backoff, maxWait := c.defaults()
	var last error
	for try := 1; try <= attempts; try++ {
		req, err := build()
		if err != nil {
			return nil, err
		}
		resp, err := c.try(ctx, h, req, try)
		wait := backoff << (try - 1)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			switch {
			case resp.StatusCode >= 200 && resp.StatusCode < 300:
				return body, nil
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				last = fmt.Errorf("HTTP %d: %s", resp.StatusCode, errMessage(body))
				if ra := retryAfter(resp.Header.Get("Retry-After")); ra > 0 {
					wait = min(ra, maxWait)
				}
			default:
				return nil, &Rejected{Status: resp.StatusCode, Message: errMessage(body)}
			}
		} else {
			last = err
		}
		if try == attempts {
			break
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(last, ctx.Err())
		case <-time.After(wait):
		}
	}
	return nil, fmt.Errorf("after %d tries: %w", attempts, last)
}

// try sends one request under its own span: the method, the provider's host and the reply's
// status, never the URL (webhook URLs and query strings hold secrets) nor the body.
func (c *Client) try(ctx context.Context, h *http.Client, req *http.Request, try int) (*http.Response, error) {
	if !telemetry.TracingEnabled() {
		return h.Do(req.WithContext(ctx))
	}
	ctx, span := telemetry.Tracer().Start(ctx, req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("server.address", req.URL.Hostname()),
			attribute.Int("http.request.resend_count", try-1)))
	defer span.End()
	resp, err := h.Do(req.WithContext(ctx))
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, "request failed")
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 400 {
			span.SetStatus(codes.Error, resp.Status)
		}
	}
	return resp, err
}

// retryAfter reads seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
