package starter

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter keeps one token bucket per write key (or source).
type limiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   int
	buckets map[string]*rate.Limiter
}

func newLimiter(perSec float64, burst int) *limiter {
	if perSec <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(math.Max(1, perSec))
	}
	return &limiter{perSec: perSec, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow reports whether key may make a request now, and if not, how long to wait.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.perSec), l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	r := b.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// tooMany answers 429 with Retry-After, as Segment clients expect.
func tooMany(w http.ResponseWriter, wait time.Duration) {
	secs := retryAfter(w, wait)
	writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: fmt.Sprintf("too many requests for this key; retry in %ds", secs)})
}
