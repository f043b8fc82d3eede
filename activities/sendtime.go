package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/sendtime"
)

// BestTimeInput asks when a contact's best time within a period is: a wait_for_best_time
// step's, or a send_email's at: best_time.
type BestTimeInput struct {
	ContactID int64            `json:"contact_id"`
	Within    journey.Duration `json:"within"`
	// Window, when set, bounds the hours chosen, and is the fallback without a profile.
	Window          *journey.Window `json:"window,omitempty"`
	DefaultTimezone string          `json:"default_timezone,omitempty"`
	// After is the workflow's now: the period starts then, and events are weighed by their age then.
	After time.Time `json:"after"`
}

// PopulationRefresh is how long a worker keeps the population's profile before reading it
// again: it moves slowly, and reading it counts every contact's opens and clicks of 90 days.
const PopulationRefresh = time.Hour

// population is the worker's cached profiles of every contact's engagement, one per fallback
// zone (the zone contacts without one are placed in).
type population struct {
	mu       sync.Mutex
	profiles map[string]cachedProfile
}

type cachedProfile struct {
	read    time.Time
	profile *sendtime.Profile
}

// populations holds each Activities' cache apart from the struct, which tests and simulations
// build as plain values.
var populations sync.Map // *Activities → *population

// BestTime is when the contact should get a message within the period: the best hour of its
// own opens and clicks (recency-weighted, in its time zone), else the population's, else the
// next opening of the step's window, else at once (At zero). It runs as a local activity: the
// answer is recorded in history.
func (a *Activities) BestTime(ctx context.Context, in BestTimeInput) (ScheduleOutput, error) {
	c, err := crm.ContactByID(ctx, a.DB, in.ContactID)
	if err != nil {
		return ScheduleOutput{}, output2(err)
	}
	loc, zone := journey.ContactZone(c.Timezone, in.DefaultTimezone)
	out := ScheduleOutput{Zone: zone}
	times, err := crm.ContactEngagement(ctx, a.DB, in.ContactID, in.After.Add(-sendtime.ContactLookback))
	if err != nil {
		return out, err
	}
	pop, err := a.populationProfile(ctx, in.DefaultTimezone, in.After)
	if err != nil {
		return out, err
	}
	var allowed func(time.Time) bool
	if w := in.Window; w != nil {
		allowed = func(t time.Time) bool { return w.Next(t, loc).Equal(t) }
	}
	if at, source, ok := sendtime.Choose(sendtime.FromEvents(times, in.After, loc), pop, in.After, in.Within.D, loc, allowed); ok {
		out.At, out.Note = at, fmt.Sprintf("the best time by the %s's engagement", source)
		return out, nil
	}
	if in.Window != nil {
		out.At, out.Note = in.Window.Next(in.After, loc), "the window's next opening (no learned hour fits)"
		return out, nil
	}
	out.Note = "no learned hour fits"
	return out, nil
}

// populationProfile is every contact's opens and clicks of the last 90 days as one profile,
// each placed in its contact's zone (fallback: the journey's), read at most every
// PopulationRefresh per fallback zone.
func (a *Activities) populationProfile(ctx context.Context, fallback string, now time.Time) (*sendtime.Profile, error) {
	v, _ := populations.LoadOrStore(a, &population{profiles: map[string]cachedProfile{}})
	p := v.(*population)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.profiles[fallback]; ok && now.Sub(c.read) < PopulationRefresh && !now.Before(c.read) {
		return c.profile, nil
	}
	bins, err := crm.PopulationEngagement(ctx, a.DB, now.Add(-sendtime.PopulationLookback))
	if err != nil {
		return nil, err
	}
	locs := map[string]*time.Location{}
	prof := &sendtime.Profile{}
	for _, b := range bins {
		loc, ok := locs[b.Zone]
		if !ok {
			loc, _ = journey.ContactZone(b.Zone, fallback)
			locs[b.Zone] = loc
		}
		// The quarter's middle places it in its local hour in any zone.
		at := b.At.Add(7*time.Minute + 30*time.Second)
		prof.Add(sendtime.HourOfWeek(at.In(loc)), float64(b.Count)*sendtime.Decay(now.Sub(at)))
	}
	p.profiles[fallback] = cachedProfile{read: now, profile: prof}
	return prof, nil
}
