// Package clock is the one source of "now" outside workflow code (which has workflow.Now):
// the dispatcher, the HTTP API and the activities take a Clock, and the CRM takes the times
// they read from it, so a test can move time forward (a re-entry window, a cart going idle)
// without sleeping.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// System is the machine's clock.
var System Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// OrSystem returns c, or the system clock when c is nil.
func OrSystem(c Clock) Clock {
	if c == nil {
		return System
	}
	return c
}

// Offset is a clock that runs with the system clock but ahead of it by an adjustable amount:
// tests move it forward past a window while everything else keeps real time running.
type Offset struct {
	mu    sync.Mutex
	ahead time.Duration
}

// Now is the system time plus the offset.
func (o *Offset) Now() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Now().Add(o.ahead)
}

// Advance moves the clock forward by d.
func (o *Offset) Advance(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ahead += d
}
