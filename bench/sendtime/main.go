// Command sendtime measures learned send times on a synthetic population: each contact reads
// mail around a planted hour of its own day (and less at weekends), in its own time zone, and
// has a noisy history of past sends, opens and stray opens. A message is then sent to every
// contact within the next 24 hours three ways, in the same run: at the hour learned from the
// history (package sendtime, the method the BestTime activity uses), at a random hour, and at
// the next 09:00 local. It prints the open rate of each: expected (the model's probability at
// the moment chosen, averaged) and drawn (one seeded draw per contact).
//
//	go run ./bench/sendtime
//	go run ./bench/sendtime -contacts 20000 -noise 0.5 -history 90
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/cairnhq/cairn/sendtime"
)

func main() {
	contacts := flag.Int("contacts", 5000, "contacts in the population")
	history := flag.Int("history", 180, "days of history before the send")
	perWeek := flag.Float64("per-week", 2, "past messages per contact per week, at random hours")
	noise := flag.Float64("noise", 0.3, "stray opens (at random hours) per real open")
	sparse := flag.Float64("sparse", 0.3, "share of contacts with a tenth of the history (new contacts)")
	seed := flag.Uint64("seed", 14, "random seed")
	flag.Parse()
	if err := run(*contacts, *history, *perWeek, *noise, *sparse, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "sendtime:", err)
		os.Exit(1)
	}
}

// person is a synthetic contact: its zone and the hour of the day it reads most.
type person struct {
	loc  *time.Location
	peak float64 // local hour of the day, fractional
	// weekend scales its reading on Saturdays and Sundays.
	weekend float64
	events  []time.Time
}

// Reading model: a floor of 3 % at any hour, up to 45 % at the peak, falling off with a
// standard deviation of 1.5 hours (on the circle of the day).
const (
	floor  = 0.03
	height = 0.42
	spread = 1.5
)

// pOpen is the chance the person opens a message delivered at t.
func (p *person) pOpen(t time.Time) float64 {
	l := t.In(p.loc)
	h := float64(l.Hour()) + float64(l.Minute())/60
	d := math.Abs(h - p.peak)
	d = math.Min(d, 24-d)
	pr := floor + height*math.Exp(-d*d/(2*spread*spread))
	if wd := l.Weekday(); wd == time.Saturday || wd == time.Sunday {
		pr *= p.weekend
	}
	return pr
}

func run(n, historyDays int, perWeek, noise, sparse float64, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	var zones []*time.Location
	for _, z := range []string{"America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo"} {
		loc, err := time.LoadLocation(z)
		if err != nil {
			return err
		}
		zones = append(zones, loc)
	}
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	from := now.Add(-time.Duration(historyDays) * 24 * time.Hour)
	people := make([]*person, n)
	opens := 0
	for i := range people {
		// Peaks cluster in the morning and the evening, as mail reading does.
		peak := 7.5 + r.NormFloat64()*1.2
		if r.Float64() < 0.5 {
			peak = 20 + r.NormFloat64()*1.5
		}
		p := &person{loc: zones[r.IntN(len(zones))], peak: math.Mod(peak+24, 24), weekend: 0.4 + 0.8*r.Float64()}
		rate := perWeek
		if r.Float64() < sparse {
			rate /= 10
		}
		sends := int(rate * float64(historyDays) / 7)
		for range sends {
			at := from.Add(time.Duration(r.Int64N(int64(now.Sub(from)))))
			if r.Float64() < p.pOpen(at) {
				// Opened a little after delivery.
				p.events = append(p.events, at.Add(time.Duration(r.ExpFloat64()*float64(20*time.Minute))))
			}
		}
		for range int(noise * float64(len(p.events))) {
			p.events = append(p.events, from.Add(time.Duration(r.Int64N(int64(now.Sub(from))))))
		}
		opens += len(p.events)
		people[i] = p
	}

	// The population's profile: every contact's opens, each in its own zone, 90 days back.
	pop := &sendtime.Profile{}
	for _, p := range people {
		for _, t := range p.events {
			if now.Sub(t) <= sendtime.PopulationLookback {
				pop.AddEvent(t, now, p.loc)
			}
		}
	}

	type strategy struct {
		name            string
		expected, drawn float64
	}
	strategies := []*strategy{{name: "random hour (baseline)"}, {name: "fixed 09:00 local (baseline)"},
		{name: "population's best hour only"}, {name: "learned (sendtime)"}}
	sources := map[string]int{}
	within := 24 * time.Hour
	var learnTime time.Duration
	for _, p := range people {
		// The journey reaches the send at a random moment of the coming week.
		after := now.Add(time.Duration(r.Int64N(int64(7 * 24 * time.Hour))))
		random := after.Add(time.Duration(r.Int64N(int64(within))))
		l := after.In(p.loc)
		nine := time.Date(l.Year(), l.Month(), l.Day(), 9, 0, 0, 0, p.loc)
		if nine.Before(after) {
			nine = time.Date(l.Year(), l.Month(), l.Day()+1, 9, 0, 0, 0, p.loc)
		}
		t0 := time.Now()
		learned, source, ok := sendtime.Choose(sendtime.FromEvents(p.events, after, p.loc), pop, after, within, p.loc, nil)
		learnTime += time.Since(t0)
		if !ok {
			learned, source = after, "none (at once)"
		}
		sources[source]++
		popOnly, _, ok := sendtime.Choose(nil, pop, after, within, p.loc, nil)
		if !ok {
			popOnly = after
		}
		for i, at := range []time.Time{random, nine, popOnly, learned} {
			pr := p.pOpen(at)
			strategies[i].expected += pr
			if r.Float64() < pr {
				strategies[i].drawn++
			}
		}
	}
	fmt.Printf("%d contacts, %d days of history (%.1f sends a week, %.0f %% of contacts with a tenth of that), %d opens incl. %.0f %% stray\n",
		n, historyDays, perWeek, 100*sparse, opens, 100*noise/(1+noise))
	fmt.Printf("%-30s %10s %10s %8s\n", "send at", "expected", "drawn", "lift")
	base := strategies[0].expected
	for _, s := range strategies {
		fmt.Printf("%-30s %9.1f%% %9.1f%% %7.2f×\n", s.name, 100*s.expected/float64(n), 100*s.drawn/float64(n), s.expected/base)
	}
	fmt.Printf("learned from: contact %d, population %d, none %d; %.1f µs per contact\n",
		sources[sendtime.SourceContact], sources[sendtime.SourcePopulation], sources["none (at once)"],
		float64(learnTime.Microseconds())/float64(n))
	return nil
}
