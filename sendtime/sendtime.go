// Package sendtime learns when a contact engages: its opens and clicks, placed by the hour of
// the week they happened in the contact's time zone and weighted by how recent they are, make
// a profile whose best hour is when a send should go out. It is pure: the CRM reads the
// events, this package weighs them.
//
// The method, with its parameters:
//
//   - every open and click weighs 2^(−age / 30 days): one a month old counts half as much as
//     one today;
//   - it adds its weight to its hour of the week (168 hours, Monday 00:00 first, in local
//     time) and half of it to each neighbouring hour, so an open at 18:59 also speaks for 19:00;
//   - an hour scores its own weight plus the mean of the same hour of the day over the seven
//     days, so a habit of the evening counts on a weekday with no history of its own;
//   - a profile decides once its events weigh at least MinContactWeight (the contact's own,
//     1: one open today, two a month old; chosen with bench/sendtime) or MinPopulationWeight
//     (every contact's together);
//   - the best time within a period is the start of its highest-scoring hour (the period's
//     first moment for the hour it starts in), the earliest of equals.
package sendtime

import (
	"math"
	"time"
)

// Parameters of the method (see the package comment).
const (
	HalfLife            = 30 * 24 * time.Hour
	MinContactWeight    = 1.0
	MinPopulationWeight = 50.0
	// ContactLookback and PopulationLookback bound the events read: older ones weigh under
	// 0.02 % (a year) and 12.5 % (90 days) of a fresh one.
	ContactLookback    = 365 * 24 * time.Hour
	PopulationLookback = 90 * 24 * time.Hour
)

// HoursPerWeek is the profile's length.
const HoursPerWeek = 7 * 24

// Profile is engagement by local hour of the week.
type Profile struct {
	Hours [HoursPerWeek]float64
	// Weight is the sum of the events' weights (before spreading to neighbours).
	Weight float64
}

// HourOfWeek is t's hour of the week in its own location: Monday 00:00–00:59 is 0.
func HourOfWeek(t time.Time) int {
	return (int(t.Weekday())+6)%7*24 + t.Hour()
}

// Decay is the weight of an event age old.
func Decay(age time.Duration) float64 {
	if age < 0 {
		age = 0
	}
	return math.Exp2(-float64(age) / float64(HalfLife))
}

// Add counts an event at hour of the week h with weight w.
func (p *Profile) Add(h int, w float64) {
	p.Hours[h] += w
	p.Weight += w
}

// AddEvent counts an event that happened at t (seen in the contact's location), weighted by
// its age at now.
func (p *Profile) AddEvent(t, now time.Time, loc *time.Location) {
	p.Add(HourOfWeek(t.In(loc)), Decay(now.Sub(t)))
}

// Score is hour h's engagement (with half of each neighbour's) plus the mean of that hour of
// the day's over the week.
func (p *Profile) Score(h int) float64 {
	daily := 0.0
	for d := range 7 {
		daily += p.spread(d*24 + h%24)
	}
	return p.spread(h) + daily/7
}

// spread is hour h's weight with half of each neighbour's.
func (p *Profile) spread(h int) float64 {
	return p.Hours[h] + 0.5*(p.Hours[(h+HoursPerWeek-1)%HoursPerWeek]+p.Hours[(h+1)%HoursPerWeek])
}

// Best is the best moment in [after, after+within) in loc: after itself (for the hour it
// falls in) or the start of a later local hour, the one whose hour scores highest, the
// earliest of equals. allowed, when set, keeps the candidates it accepts; ok is false when it
// accepts none.
func (p *Profile) Best(after time.Time, within time.Duration, loc *time.Location, allowed func(time.Time) bool) (best time.Time, ok bool) {
	end := after.Add(within)
	score := math.Inf(-1)
	local := after.In(loc)
	next := time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), 0, 0, 0, loc).Add(time.Hour)
	for c := after; c.Before(end); {
		if allowed == nil || allowed(c) {
			if s := p.Score(HourOfWeek(c.In(loc))); s > score {
				best, score, ok = c, s, true
			}
		}
		c, next = next, next.Add(time.Hour)
	}
	return best, ok
}

// FromEvents is the profile of events that happened at times, placed in loc and weighed by
// their age at now.
func FromEvents(times []time.Time, now time.Time, loc *time.Location) *Profile {
	p := &Profile{}
	for _, t := range times {
		p.AddEvent(t, now, loc)
	}
	return p
}

// Where a best time comes from.
const (
	SourceContact    = "contact"
	SourcePopulation = "population"
)

// Choose is the best moment in [after, after+within) in loc (see Best): by the contact's own
// profile when its events weigh at least MinContactWeight, else by the population's when
// theirs weigh at least MinPopulationWeight. ok is false when neither decides (or allowed
// accepts no hour), and the caller falls back (a step's window, or at once).
func Choose(contact, population *Profile, after time.Time, within time.Duration, loc *time.Location, allowed func(time.Time) bool) (at time.Time, source string, ok bool) {
	if contact != nil && contact.Weight >= MinContactWeight {
		if at, ok := contact.Best(after, within, loc, allowed); ok {
			return at, SourceContact, true
		}
	}
	if population != nil && population.Weight >= MinPopulationWeight {
		if at, ok := population.Best(after, within, loc, allowed); ok {
			return at, SourcePopulation, true
		}
	}
	return time.Time{}, "", false
}
