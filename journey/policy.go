package journey

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Delivery channels a send policy governs. Ad audiences are not messages and have none.
const (
	ChannelEmail  = "email"
	ChannelSMS    = "sms"
	ChannelNotify = "notify"
)

// Channels lists the channels in the order documentation shows them.
var Channels = []string{ChannelEmail, ChannelSMS, ChannelNotify}

// Policy is a journey's send policy: per channel, frequency caps and quiet hours that replace
// the worker's defaults (CAIRN_EMAIL_CAPS, CAIRN_EMAIL_QUIET_HOURS, …) for this journey's sends.
type Policy struct {
	Email  *ChannelPolicy `json:"email,omitempty"`
	SMS    *ChannelPolicy `json:"sms,omitempty"`
	Notify *ChannelPolicy `json:"notify,omitempty"`
}

// For is the journey's policy for a channel, or nil when it keeps the defaults.
func (p *Policy) For(channel string) *ChannelPolicy {
	if p == nil {
		return nil
	}
	switch channel {
	case ChannelEmail:
		return p.Email
	case ChannelSMS:
		return p.SMS
	case ChannelNotify:
		return p.Notify
	}
	return nil
}

// ChannelPolicy is what a contact may receive on one channel.
type ChannelPolicy struct {
	// Caps bound the sends to one contact on the channel, counted over every journey. Nil
	// keeps the defaults; an empty list (caps: []) means no cap.
	Caps []Cap `json:"caps"`
	// QuietHours, when set, replaces the default quiet hours (Off: none).
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
}

// Effective is the policy a send follows: the journey's caps and quiet hours where it sets
// them, the defaults elsewhere.
func Effective(defaults, journey *ChannelPolicy) ChannelPolicy {
	var out ChannelPolicy
	if defaults != nil {
		out = *defaults
	}
	if journey != nil {
		if journey.Caps != nil {
			out.Caps = journey.Caps
		}
		if journey.QuietHours != nil {
			out.QuietHours = journey.QuietHours
		}
	}
	if out.QuietHours != nil && out.QuietHours.Off {
		out.QuietHours = nil
	}
	return out
}

// Cap is at most Max sends in any period of length Per.
type Cap struct {
	Max int      `json:"max"`
	Per Duration `json:"per"`
}

// String names the cap as state, stats and metrics show it: "cap 2 per 24h".
func (c Cap) String() string { return fmt.Sprintf("cap %d per %s", c.Max, c.Per) }

// MaxCapPeriod bounds a cap's period: sends are counted over it.
const MaxCapPeriod = 366 * 24 * time.Hour

// QuietHours is a daily period, in the contact's time zone, when nothing is sent: From to To,
// across midnight when To is earlier (21:00 to 08:00). Off turns default quiet hours off.
type QuietHours struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	Off  bool   `json:"-"`
}

// String names the rule: "quiet hours 21:00-08:00".
func (q QuietHours) String() string {
	if q.Off {
		return "quiet hours off"
	}
	return fmt.Sprintf("quiet hours %s-%s", q.From, q.To)
}

// MarshalJSON writes "off" or {from, to}, as documents do.
func (q QuietHours) MarshalJSON() ([]byte, error) {
	if q.Off {
		return []byte(`"off"`), nil
	}
	type plain QuietHours
	return json.Marshal(plain(q))
}

// UnmarshalJSON reads "off" or {from, to}.
func (q *QuietHours) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "off" {
			return fmt.Errorf("quiet_hours must be \"off\" or {from, to}")
		}
		*q = QuietHours{Off: true}
		return nil
	}
	type plain QuietHours
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*q = QuietHours(p)
	return nil
}

// End is, for an instant t inside the quiet hours in loc, the instant they end (the next
// local To); quiet is false when t is outside them. Days and times are local, so the quiet
// hours stay 21:00 to 08:00 across a DST change (the night is an hour shorter or longer).
func (q QuietHours) End(t time.Time, loc *time.Location) (end time.Time, quiet bool) {
	if q.Off {
		return time.Time{}, false
	}
	fh, fm, err1 := ParseClock(q.From)
	th, tm, err2 := ParseClock(q.To)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	from, to := fh*60+fm, th*60+tm
	local := t.In(loc)
	now := local.Hour()*60 + local.Minute()
	switch {
	case from == to:
		return time.Time{}, false
	case from < to:
		quiet = now >= from && now < to
	default:
		quiet = now >= from || now < to
	}
	if !quiet {
		return time.Time{}, false
	}
	day := local.Day()
	if now >= to {
		day++ // quiet since this evening: it ends tomorrow morning
	}
	return time.Date(local.Year(), local.Month(), day, th, tm, 0, 0, loc), true
}

// SendRules are what a send step says about the policy.
type SendRules struct {
	// IfCapped is wait (the default: the send waits until the policy allows it) or skip (the
	// step is skipped instead).
	IfCapped string `json:"if_capped,omitempty"`
	// Transactional sends (a receipt, a password reset) bypass caps and quiet hours and are
	// not counted by caps.
	Transactional bool `json:"transactional,omitempty"`
}

// What a send step does when the policy would defer it.
const (
	IfCappedWait = "wait"
	IfCappedSkip = "skip"
)

// AtBestTime is send_email's at: the email waits for the contact's best time first.
const AtBestTime = "best_time"

// Delivery says which channel a send step uses and its rules; ok is false for other steps.
func (s Step) Delivery() (channel string, rules SendRules, ok bool) {
	switch {
	case s.SendEmail != nil:
		return ChannelEmail, s.SendEmail.SendRules, true
	case s.SendSMS != nil:
		return ChannelSMS, s.SendSMS.SendRules, true
	case s.Notify != nil:
		return ChannelNotify, s.Notify.SendRules, true
	}
	return "", SendRules{}, false
}

// ParseCaps reads caps written as a worker's default (CAIRN_EMAIL_CAPS): "2/24h,5/7d" is at
// most 2 in any 24 hours and 5 in any 7 days; "" is none.
func ParseCaps(s string) ([]Cap, error) {
	var out []Cap
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, per, ok := strings.Cut(part, "/")
		max, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || err != nil {
			return nil, fmt.Errorf("%q is not a cap (write e.g. 2/24h for at most 2 in any 24 hours)", part)
		}
		d, err := ParseDuration(per)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		c := Cap{Max: max, Per: d}
		var problem error
		c.check(func(field, format string, args ...any) {
			if problem == nil {
				problem = fmt.Errorf("%q: %s %s", part, field, fmt.Sprintf(format, args...))
			}
		})
		if problem != nil {
			return nil, problem
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseQuietHours reads quiet hours written as a worker's default: "21:00-08:00"; "" is none.
func ParseQuietHours(s string) (*QuietHours, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	from, to, ok := strings.Cut(s, "-")
	q := &QuietHours{From: strings.TrimSpace(from), To: strings.TrimSpace(to)}
	if !ok {
		return nil, fmt.Errorf("%q is not quiet hours (write e.g. 21:00-08:00)", s)
	}
	if msg := q.problem(); msg != "" {
		return nil, fmt.Errorf("%q: %s", s, msg)
	}
	return q, nil
}

// check reports what makes a cap unusable, each at its field (max, per).
func (c Cap) check(add func(field, format string, args ...any)) {
	switch {
	case c.Max < 1:
		add("max", "%d lets nothing through: a cap allows at least 1 send (caps: [] for none)", c.Max)
	case c.Max > 1000000:
		add("max", "must be at most 1000000")
	}
	if c.Per.D <= 0 {
		add("per", "must be longer than zero")
	} else if c.Per.D > MaxCapPeriod {
		add("per", "%s is longer than %s: sends are counted over the period", c.Per, Duration{MaxCapPeriod})
	}
}

func (q QuietHours) problem() string {
	for _, v := range []string{q.From, q.To} {
		if _, _, err := ParseClock(v); err != nil {
			return err.Error()
		}
	}
	if q.From == q.To {
		return fmt.Sprintf("from %s and to %s are the same time: quiet hours need a length", q.From, q.To)
	}
	return ""
}

// policy reads a journey's policy: {email: {caps: [...], quiet_hours: {...} | off}, sms, notify}.
func (d *decoder) policy(n *yaml.Node, path string) *Policy {
	p := &Policy{}
	f := d.fields(n, path, Channels...)
	if f == nil {
		return p
	}
	for _, ch := range Channels {
		v := f[ch]
		if v == nil {
			continue
		}
		cp := &ChannelPolicy{}
		cpath := path + "." + ch
		if g := d.fields(v, cpath, "caps", "quiet_hours"); g != nil {
			if c := g["caps"]; c != nil {
				cp.Caps = []Cap{}
				if c.Kind != yaml.SequenceNode {
					d.fail(c, cpath+".caps", "must be a list such as [{max: 2, per: 24h}] ([] for none)")
				} else if !d.tooMany(c, cpath+".caps", "caps") {
					for i, item := range c.Content {
						cp.Caps = append(cp.Caps, d.cap(item, fmt.Sprintf("%s.caps[%d]", cpath, i)))
					}
				}
			}
			if q := g["quiet_hours"]; q != nil {
				if q.Kind == yaml.ScalarNode && q.Value == "off" {
					cp.QuietHours = &QuietHours{Off: true}
				} else if h := d.fields(q, cpath+".quiet_hours", "from", "to"); h != nil {
					d.required(h, q, cpath+".quiet_hours", "from", "to")
					cp.QuietHours = &QuietHours{From: d.optStr(h["from"], cpath+".quiet_hours.from"), To: d.optStr(h["to"], cpath+".quiet_hours.to")}
				}
			}
		}
		switch ch {
		case ChannelEmail:
			p.Email = cp
		case ChannelSMS:
			p.SMS = cp
		case ChannelNotify:
			p.Notify = cp
		}
	}
	return p
}

func (d *decoder) cap(n *yaml.Node, path string) Cap {
	var c Cap
	f := d.fields(n, path, "max", "per")
	if f == nil {
		return c
	}
	d.required(f, n, path, "max", "per")
	if v := f["max"]; v != nil {
		c.Max = d.integer(v, path+".max")
	}
	if v := f["per"]; v != nil {
		if p := d.duration(v, path+".per"); p != nil {
			c.Per = *p
		}
	}
	return c
}

// integer reads a whole number.
func (d *decoder) integer(n *yaml.Node, path string) int {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if x, err := strconv.Atoi(n.Value); err == nil {
			return x
		}
	}
	d.fail(n, path, "must be a whole number, not %s", describe(n))
	return 0
}

// sendRules reads if_capped and transactional from a send step's mapping.
func (d *decoder) sendRules(f map[string]*yaml.Node, path string) SendRules {
	var r SendRules
	if v := f["if_capped"]; v != nil {
		r.IfCapped = d.str(v, path+".if_capped")
	}
	if v := f["transactional"]; v != nil {
		if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
			d.fail(v, path+".transactional", "must be true or false")
		} else {
			r.Transactional = v.Value == "true"
		}
	}
	return r
}

// checkPolicy validates a journey's policy.
func (v *validator) checkPolicy(p *Policy) {
	if p == nil {
		return
	}
	for _, ch := range Channels {
		cp := p.For(ch)
		if cp == nil {
			continue
		}
		path := "policy." + ch
		for i, c := range cp.Caps {
			cpath := fmt.Sprintf("%s.caps[%d]", path, i)
			c.check(func(field, format string, args ...any) { v.add(cpath+"."+field, format, args...) })
		}
		if q := cp.QuietHours; q != nil && !q.Off {
			if msg := q.problem(); msg != "" {
				v.add(path+".quiet_hours", "%s", msg)
			}
		}
	}
}

// checkSendRules validates a send step's if_capped.
func (v *validator) checkSendRules(s Step, path string) {
	ch, r, ok := s.Delivery()
	if !ok {
		return
	}
	key := map[string]string{ChannelEmail: "send_email", ChannelSMS: "send_sms", ChannelNotify: "notify"}[ch]
	switch r.IfCapped {
	case "", IfCappedWait, IfCappedSkip:
	default:
		v.add(path+"."+key+".if_capped", "%q is not one of wait, skip", r.IfCapped)
	}
}
