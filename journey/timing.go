package journey

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DateWait holds the contact until a date: a fixed one, or one held in a contact field, moved
// by Offset ("-3d": three days before) and set to At ("09:00") in the contact's time zone.
// A date already past lets the contact through at once.
type DateWait struct {
	Date   string    `json:"date,omitempty"`
	Field  string    `json:"field,omitempty"`
	Offset *Duration `json:"offset,omitempty"`
	At     string    `json:"at,omitempty"`
}

// Window holds the contact until the next moment inside a weekly time window in the
// contact's time zone (contact's timezone field → journey timezone → UTC).
type Window struct {
	Days []string `json:"days"`
	From string   `json:"from"`
	To   string   `json:"to"`
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseClock reads "09:00" as hours and minutes.
func ParseClock(s string) (h, m int, err error) {
	hs, ms, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if !ok || err1 != nil || err2 != nil || h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0) {
		return 0, 0, fmt.Errorf("%q is not a time of day (write 09:00 or 17:30)", s)
	}
	return h, m, nil
}

// Next returns the first instant at or after t inside the window, in loc. Days are local
// days and times are local times, so a window stays 09:00–17:00 across a DST change.
func (w Window) Next(t time.Time, loc *time.Location) time.Time {
	fh, fm, _ := ParseClock(w.From)
	th, tm, _ := ParseClock(w.To)
	local := t.In(loc)
	allowed := map[time.Weekday]bool{}
	for _, d := range w.Days {
		allowed[weekdays[strings.ToLower(d)]] = true
	}
	if len(w.Days) == 0 {
		for _, d := range weekdays {
			allowed[d] = true
		}
	}
	for i := 0; i <= 7; i++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+i, 12, 0, 0, 0, loc)
		if !allowed[day.Weekday()] {
			continue
		}
		start := time.Date(day.Year(), day.Month(), day.Day(), fh, fm, 0, 0, loc)
		end := time.Date(day.Year(), day.Month(), day.Day(), th, tm, 0, 0, loc)
		if !t.Before(start) && t.Before(end) {
			return t
		}
		if start.After(t) {
			return start
		}
	}
	return t // unreachable for a valid window: some allowed day comes within a week
}

// Target computes when a date wait ends, given the field's value (for Field waits).
func (w DateWait) Target(fieldValue string, loc *time.Location) (time.Time, error) {
	raw := w.Date
	if w.Field != "" {
		raw = fieldValue
	}
	var base time.Time
	if d, err := time.ParseInLocation("2006-01-02", raw, loc); err == nil {
		base = d
	} else if d, err := time.Parse(time.RFC3339, raw); err == nil {
		base = d.In(loc)
	} else {
		return time.Time{}, fmt.Errorf("%q is not a date", raw)
	}
	if w.Offset != nil {
		// Whole days move by calendar days, so "-1d" is the day before even across DST.
		days := int(w.Offset.D / (24 * time.Hour))
		base = base.AddDate(0, 0, days).Add(w.Offset.D - time.Duration(days)*24*time.Hour)
	}
	if w.At != "" {
		h, m, err := ParseClock(w.At)
		if err != nil {
			return time.Time{}, err
		}
		base = time.Date(base.Year(), base.Month(), base.Day(), h, m, 0, 0, loc)
	}
	return base, nil
}

// ParseOffset reads a signed duration: "-3d", "+2h", "1d".
func ParseOffset(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	d, err := ParseDuration(strings.TrimLeft(s, "+-"))
	if neg {
		d.D = -d.D
	}
	return d, err
}

// ContactZone is the time zone of a contact's calendar waits, quiet hours and best times: its
// own (contact), else the journey's (journeyZone), else UTC; name says which
// ("Europe/Lisbon (contact)").
func ContactZone(contact, journeyZone string) (loc *time.Location, name string) {
	for _, cand := range []struct{ name, from string }{{contact, "contact"}, {journeyZone, "journey"}} {
		if cand.name == "" || cand.name == "<nil>" {
			continue
		}
		if l, err := time.LoadLocation(cand.name); err == nil {
			return l, cand.name + " (" + cand.from + ")"
		}
	}
	return time.UTC, "UTC"
}
