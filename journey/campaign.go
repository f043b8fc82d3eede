package journey

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Campaign sends a segment's members into a journey (or a single message) on a schedule: at
// each firing, the members at that moment enter, in batches, at most Rate a second.
//
//	id: spring-sale
//	name: Spring sale
//	segment: repeat-buyers
//	journey: spring-sale              # or message: {template: spring-sale}
//	schedule: {at: 2026-04-01T09:00:00Z}  # or {every: 7d}, or {cron: "0 9 * * MON", timezone: Europe/Lisbon}
//	rate: 500
type Campaign struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Segment string `json:"segment"`
	// Journey is the journey members enter; Message, instead, a single email (Cairn runs it as
	// the journey MessageJourneyID(id)).
	Journey  string           `json:"journey,omitempty"`
	Message  *SendEmail       `json:"message,omitempty"`
	Schedule CampaignSchedule `json:"schedule"`
	// Rate bounds the entries a second (default DefaultCampaignRate); Batch is how many members
	// one step of a firing enters (default: Rate, at most MaxCampaignBatch).
	Rate  int `json:"rate"`
	Batch int `json:"batch"`
}

// CampaignSchedule is when a campaign fires: once At a time, or Every interval (from Offset),
// or by a Cron expression in a Timezone.
type CampaignSchedule struct {
	At       *time.Time `json:"at,omitempty"`
	Every    *Duration  `json:"every,omitempty"`
	Offset   *Duration  `json:"offset,omitempty"`
	Cron     string     `json:"cron,omitempty"`
	Timezone string     `json:"timezone,omitempty"`
}

// Campaign defaults and limits.
const (
	DefaultCampaignRate = 200
	MaxCampaignRate     = 10000
	MaxCampaignBatch    = 1000
	// MinCampaignInterval bounds how often a recurring campaign fires.
	MinCampaignInterval = time.Hour
)

// MessageJourneyID is the journey that sends a single-message campaign's email.
func MessageJourneyID(campaignID string) string { return "campaign." + campaignID }

// MessageJourney is the journey a single-message campaign's members enter, one email, and
// its document.
func (c *Campaign) MessageJourney() (*Journey, string, error) {
	doc := fmt.Sprintf("# The single message of campaign %s.\nid: %s\nname: %q\ntrigger: {manual: true}\nsteps: [{id: message, send_email: {template: %q}}]\n",
		c.ID, MessageJourneyID(c.ID), "Campaign "+c.ID, c.Message.Template)
	j, err := Decode([]byte(doc))
	return j, doc, err
}

// EntryJourney is the journey the campaign's members enter.
func (c *Campaign) EntryJourney() string {
	if c.Message != nil {
		return MessageJourneyID(c.ID)
	}
	return c.Journey
}

// DecodeCampaign reads a campaign from YAML or JSON and checks it, every problem with its path.
// now is when it is put: a once-only time must be after it. It does not look up the segment,
// journey or template it names (the store does).
// A document with mistakes returns a *ValidationError beside what could be read of it (nil
// when nothing could).
func DecodeCampaign(doc []byte, now time.Time) (*Campaign, error) {
	n, err := parse(doc, "the document is empty")
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	c := &Campaign{Rate: DefaultCampaignRate}
	f := d.fields(n, "", "id", "name", "segment", "journey", "message", "schedule", "rate", "batch")
	if f != nil {
		c.ID = d.optStr(f["id"], "id")
		c.Name = d.optStr(f["name"], "name")
		for _, k := range []string{"segment", "schedule"} {
			if f[k] == nil {
				d.fail(n, k, "is required")
			}
		}
		c.Segment = d.optStr(f["segment"], "segment")
		switch {
		case f["journey"] != nil && f["message"] != nil:
			d.fail(f["message"], "message", "give a journey or a message, not both")
		case f["journey"] != nil:
			c.Journey = d.str(f["journey"], "journey")
		case f["message"] != nil:
			c.Message = &SendEmail{}
			if m := d.fields(f["message"], "message", "template"); m != nil {
				d.required(m, f["message"], "message", "template")
				c.Message.Template = d.optStr(m["template"], "message.template")
			}
		default:
			d.fail(n, "journey", "is required: the journey members enter (or message: {template: …} for a single email)")
		}
		if v := f["schedule"]; v != nil {
			c.Schedule = d.campaignSchedule(v, now)
		}
		c.Rate = d.count(f["rate"], "rate", DefaultCampaignRate, MaxCampaignRate)
		c.Batch = d.count(f["batch"], "batch", min(c.Rate, MaxCampaignBatch), MaxCampaignBatch)
	}
	if c.Segment != "" && !idPattern.MatchString(c.Segment) {
		d.fail(f["segment"], "segment", "%q is not a segment id", c.Segment)
		c.Segment = ""
	}
	if c.Journey != "" && !idPattern.MatchString(c.Journey) {
		d.fail(f["journey"], "journey", "%q is not a journey id", c.Journey)
		c.Journey = ""
	}
	if err := d.err(); err != nil {
		// What was read comes back too, so the caller can check what it names in the same
		// answer: every problem at once.
		return c, err
	}
	return c, nil
}

// CampaignIDProblem says why an id cannot name a campaign ("" when it can): a journey id short
// enough that campaign.<id> is one too.
func CampaignIDProblem(id string) string {
	if !idPattern.MatchString(MessageJourneyID(id)) || !idPattern.MatchString(id) {
		return fmt.Sprintf("%q must be lower-case letters, digits, '-', '_' or '.', starting with a letter or digit (at most %d)", id, 63-len("campaign."))
	}
	return ""
}

// count reads a whole number from 1 to most (def when absent).
func (d *decoder) count(n *yaml.Node, path string, def, most int) int {
	if n == nil {
		return def
	}
	x, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || x < 1 || x > most {
		d.fail(n, path, "must be a whole number from 1 to %d, not %s", most, describe(n))
		return def
	}
	return x
}

func (d *decoder) campaignSchedule(n *yaml.Node, now time.Time) CampaignSchedule {
	var s CampaignSchedule
	f := d.fields(n, "schedule", "at", "every", "offset", "cron", "timezone")
	if f == nil {
		return s
	}
	kinds := 0
	for _, k := range []string{"at", "every", "cron"} {
		if f[k] != nil {
			kinds++
		}
	}
	if kinds != 1 {
		d.fail(n, "schedule", "give one of at (once), every (an interval) or cron")
		return s
	}
	if v := f["at"]; v != nil {
		raw := d.str(v, "schedule.at")
		t, err := time.Parse(time.RFC3339, raw)
		switch {
		case raw == "":
		case err != nil:
			d.fail(v, "schedule.at", "%q is not a time (write 2026-04-01T09:00:00Z or 2026-04-01T10:00:00+01:00)", raw)
		case !t.After(now):
			d.fail(v, "schedule.at", "%s is in the past: fire the campaign now with POST /v1/campaigns/{id}/fire", raw)
		default:
			s.At = &t
		}
	}
	if v := f["every"]; v != nil {
		if s.Every = d.duration(v, "schedule.every"); s.Every != nil && s.Every.D < MinCampaignInterval {
			d.fail(v, "schedule.every", "a campaign fires at most every %s", Duration{D: MinCampaignInterval})
		}
	}
	if v := f["offset"]; v != nil {
		if f["every"] == nil {
			d.fail(v, "schedule.offset", "only applies with every")
		} else if s.Offset = d.duration(v, "schedule.offset"); s.Offset != nil && s.Every != nil && s.Offset.D >= s.Every.D {
			d.fail(v, "schedule.offset", "must be shorter than every")
		}
	}
	if v := f["cron"]; v != nil {
		s.Cron = d.str(v, "schedule.cron")
		if err := checkCron(s.Cron); err != nil && s.Cron != "" {
			d.fail(v, "schedule.cron", "%s", err)
		}
	}
	if v := f["timezone"]; v != nil {
		s.Timezone = d.str(v, "schedule.timezone")
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			d.fail(v, "schedule.timezone", "%q is not an IANA time zone (e.g. Europe/Lisbon)", s.Timezone)
		} else if f["cron"] == nil {
			d.fail(v, "schedule.timezone", "only applies with cron")
		}
	}
	return s
}

// cronFields are the five fields of a cron expression, with their ranges and names.
var cronFields = []struct {
	name     string
	min, max int
	names    []string
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// checkCron checks a five-field cron expression (minute hour day-of-month month day-of-week;
// each *, a number or name, a range a-b, a list, with /step), or @hourly, @daily, @weekly,
// @monthly, @yearly.
func checkCron(expr string) error {
	switch strings.TrimSpace(expr) {
	case "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually":
		return nil
	}
	parts := strings.Fields(expr)
	if len(parts) != 5 {
		return fmt.Errorf("%q is not a cron expression: it needs five fields (minute hour day-of-month month day-of-week), e.g. \"0 9 * * MON\"", expr)
	}
	for i, p := range parts {
		f := cronFields[i]
		value := func(s string) (int, error) {
			for k, name := range f.names {
				if strings.EqualFold(s, name) {
					return k + f.min, nil
				}
			}
			x, err := strconv.Atoi(s)
			if err != nil || x < f.min || x > f.max {
				return 0, fmt.Errorf("%s %q is not from %d to %d", f.name, s, f.min, f.max)
			}
			return x, nil
		}
		for _, item := range strings.Split(p, ",") {
			rng, step, stepped := strings.Cut(item, "/")
			if stepped {
				if x, err := strconv.Atoi(step); err != nil || x < 1 {
					return fmt.Errorf("%s step %q is not a whole number from 1", f.name, step)
				}
			}
			if rng == "*" {
				continue
			}
			lo, hi, isRange := strings.Cut(rng, "-")
			a, err := value(lo)
			if err != nil {
				return err
			}
			if isRange {
				b, err := value(hi)
				if err != nil {
					return err
				}
				if b < a {
					return fmt.Errorf("%s range %q ends before it starts", f.name, rng)
				}
			}
		}
	}
	return nil
}

// String says when the schedule fires, for summaries.
func (s CampaignSchedule) String() string {
	switch {
	case s.At != nil:
		return "once at " + s.At.UTC().Format(time.RFC3339)
	case s.Every != nil && s.Offset != nil:
		return fmt.Sprintf("every %s (offset %s)", s.Every, s.Offset)
	case s.Every != nil:
		return "every " + s.Every.String()
	case s.Timezone != "":
		return fmt.Sprintf("cron %q in %s", s.Cron, s.Timezone)
	}
	return fmt.Sprintf("cron %q (UTC)", s.Cron)
}
