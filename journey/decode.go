package journey

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Decode reads a journey from YAML or JSON (JSON is read as YAML, so both give the same
// paths in errors), assigns ids to steps that have none, and validates it. The error, when
// not nil, is a *ValidationError listing every problem with its path and line.
//
// A document past one of the limits (MaxDocumentBytes, MaxConditionDepth, ...) is refused
// with the path where it went past, before its remaining parts are read.
func Decode(doc []byte) (*Journey, error) {
	j, err := Read(doc)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// Read is Decode for tools that check more than the language does (that the templates a
// journey sends exist): it returns the journey as far as it read, beside the problems, so
// their problems come in the same pass. The journey is nil only when the document does not
// parse, or is past a limit.
func Read(doc []byte) (*Journey, error) {
	n, err := parse(doc, "the document is empty")
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	j := d.journey(n)
	j.assignIDs()
	if d.limited || d.more > 0 {
		// Past a limit the rest was not read: checking what was would add only noise.
		return nil, d.err()
	}
	probs := d.probs
	var ve *ValidationError
	if err := j.Validate(); errors.As(err, &ve) {
		// Every problem in one pass: what validation finds beside what decoding refused.
		probs = mergeProblems(probs, ve.Problems)
	}
	if len(probs) > MaxProblems {
		probs = append(probs[:MaxProblems:MaxProblems], Problem{Message: fmt.Sprintf("and %d more problems", len(probs)-MaxProblems)})
	}
	if len(probs) > 0 {
		return j, &ValidationError{Problems: withLines(lineIndex(n), probs)}
	}
	return j, nil
}

type decoder struct {
	probs []Problem
	// more counts the problems past MaxProblems.
	more int
	// depth and stepDepth are how deep the condition and the step being read are nested;
	// nodes and stepCount count conditions and steps read so far.
	depth, stepDepth, nodes, stepCount int
	// segment is set when the condition read is a segment's: journey-only forms are refused.
	segment bool
	// limited is set once a limit is passed: the rest of the document is not read.
	limited bool
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if len(d.probs) >= MaxProblems {
		d.more++
		return
	}
	p := Problem{Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line = n.Line
	}
	d.probs = append(d.probs, p)
}

// fields reads a mapping, reporting keys that are not allowed and keys given twice.
func (d *decoder) fields(n *yaml.Node, path string, allowed ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping (an object), not %s", describe(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !contains(allowed, k.Value):
			d.fail(k, join(path, k.Value), "unknown key (allowed here: %s)", strings.Join(allowed, ", "))
		case out[k.Value] != nil:
			d.fail(k, join(path, k.Value), "is given twice")
		default:
			out[k.Value] = v
		}
	}
	return out
}

func (d *decoder) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.fail(n, path, "must be a string, not %s", describe(n))
		return ""
	}
	return n.Value
}

func (d *decoder) journey(n *yaml.Node) *Journey {
	j := &Journey{}
	f := d.fields(n, "", "id", "name", "trigger", "triggers", "entry", "reentry", "key", "timezone", "exit", "goals", "policy", "steps")
	if f == nil {
		return j
	}
	if v := f["id"]; v != nil {
		j.ID = d.str(v, "id")
	}
	if v := f["name"]; v != nil {
		j.Name = d.str(v, "name")
	}
	switch {
	case f["trigger"] != nil && f["triggers"] != nil:
		d.fail(f["triggers"], "triggers", "give trigger (one) or triggers (a list), not both")
	case f["trigger"] != nil:
		j.Triggers = []Trigger{d.trigger(f["trigger"], "trigger")}
	case f["triggers"] != nil:
		if v := f["triggers"]; v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			d.fail(v, "triggers", "must be a non-empty list of triggers")
		} else if !d.tooMany(v, "triggers", "triggers") {
			for i, t := range v.Content {
				j.Triggers = append(j.Triggers, d.trigger(t, fmt.Sprintf("triggers[%d]", i)))
			}
		}
	default:
		d.fail(n, "trigger", "is required (e.g. trigger: {event: Signed Up})")
	}
	if v := f["timezone"]; v != nil {
		j.Timezone = d.str(v, "timezone")
	}
	if v := f["key"]; v != nil {
		if j.Key = d.str(v, "key"); j.Key == "" && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			d.fail(v, "key", "needs the name of a property of the trigger event, such as cart_id")
		}
	}
	if v := f["entry"]; v != nil {
		c := d.condition(v, "entry")
		j.Entry = &c
	}
	j.Reentry.Mode = ReentryAlways
	if v := f["reentry"]; v != nil {
		if r := d.fields(v, "reentry", "mode", "wait"); r != nil {
			if r["mode"] != nil {
				j.Reentry.Mode = d.str(r["mode"], "reentry.mode")
			}
			if r["wait"] != nil {
				j.Reentry.Wait = d.duration(r["wait"], "reentry.wait")
			}
		}
	}
	if v := f["exit"]; v != nil {
		c := d.condition(v, "exit")
		j.Exit = &c
	}
	if v := f["goals"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			d.fail(v, "goals", "must be a list of goals")
		} else if !d.tooMany(v, "goals", "goals") {
			for i, g := range v.Content {
				j.Goals = append(j.Goals, d.goal(g, fmt.Sprintf("goals[%d]", i)))
			}
		}
	}
	if v := f["policy"]; v != nil {
		j.Policy = d.policy(v, "policy")
	}
	if v := f["steps"]; v != nil {
		j.Steps = d.steps(v, "steps")
	}
	return j
}

func (d *decoder) trigger(n *yaml.Node, path string) Trigger {
	var t Trigger
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "a trigger must be a mapping such as {event: Signed Up}, not %s", describe(n))
		return t
	}
	var kinds []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if _, ok := triggerShortcuts[n.Content[i].Value]; ok {
			kinds = append(kinds, n.Content[i].Value)
		}
	}
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			d.fail(n, path, "names no trigger (one of %s)", strings.Join(TriggerKinds(), ", "))
		} else {
			d.fail(n, path, "has %s: one trigger per entry (use triggers: [...] for several)", strings.Join(kinds, " and "))
		}
		return t
	}
	t.Kind = kinds[0]
	allowed := []string{t.Kind, "where"}
	switch t.Kind {
	case "score_above":
		allowed = append(allowed, "score")
	case "date_field":
		allowed = append(allowed, "offset", "anniversary")
	}
	f := d.fields(n, path, allowed...)
	if f == nil {
		return t
	}
	sc := triggerShortcuts[t.Kind]
	t.Event = sc.event
	v, p := f[t.Kind], join(path, t.Kind)
	switch t.Kind {
	case "event":
		t.Event = d.str(v, p)
	case "cart_abandoned", "manual":
		if v.Kind != yaml.ScalarNode || v.Value != "true" {
			d.fail(v, p, "must be true")
		}
	case "page_visited":
		if t.URL = d.str(v, p); t.URL == "" && v.Kind == yaml.ScalarNode {
			d.fail(v, p, "needs a URL or path pattern such as \"/pricing*\"")
		}
	case "product_purchased":
		t.Product = d.str(v, p)
	case "score_above":
		x := d.number(v, p)
		t.ScoreAbove = &x
		if s := f["score"]; s != nil {
			t.ScoreName = d.str(s, join(path, "score"))
		}
	case "date_field":
		t.Date = &DateTrigger{Field: d.str(v, p)}
		if o := f["offset"]; o != nil {
			if raw := d.str(o, join(path, "offset")); raw != "" {
				off, err := ParseOffset(raw)
				switch {
				case err != nil:
					d.fail(o, join(path, "offset"), "%s", err)
				case off.D%(24*time.Hour) != 0:
					d.fail(o, join(path, "offset"), "%q must be whole days (a date has no time of day)", raw)
				default:
					t.Date.Offset = &off
				}
			}
		}
		if an := f["anniversary"]; an != nil {
			t.Date.Anniversary = an.Kind == yaml.ScalarNode && an.Value == "true"
		}
		t.Where = map[string]any{"rule": t.Date.Key()}
	default:
		if val := d.str(v, p); val != "" {
			t.Where = map[string]any{sc.prop: val}
		}
	}
	if w := f["where"]; w != nil {
		t.Where = d.where(w, path, t.Where)
	}
	return t
}

func (d *decoder) goal(n *yaml.Node, path string) Goal {
	var g Goal
	f := d.fields(n, path, "id", "when", "then", "on_reach", "wait_timeout")
	if f == nil {
		return g
	}
	for _, key := range []string{"id", "when", "then"} {
		if f[key] == nil {
			d.fail(n, join(path, key), "is required")
		}
	}
	if v := f["id"]; v != nil {
		g.ID = d.str(v, path+".id")
	}
	if v := f["when"]; v != nil {
		g.When = d.condition(v, path+".when")
	}
	if v := f["then"]; v != nil {
		g.Then = d.str(v, path+".then")
	}
	if v := f["on_reach"]; v != nil {
		g.OnReach = d.str(v, path+".on_reach")
	}
	if v := f["wait_timeout"]; v != nil {
		g.WaitTimeout = d.duration(v, path+".wait_timeout")
	}
	return g
}

func (d *decoder) dateWait(n *yaml.Node, path string) *DateWait {
	w := &DateWait{}
	f := d.fields(n, path, "date", "field", "offset", "at")
	if f == nil {
		return w
	}
	switch {
	case f["date"] != nil && f["field"] != nil:
		d.fail(n, path, "give a date or a field, not both")
	case f["date"] != nil:
		w.Date = d.str(f["date"], path+".date")
		if _, err := ParseDate(w.Date); err != nil && w.Date != "" {
			d.fail(f["date"], path+".date", "%s", err)
		}
	case f["field"] != nil:
		w.Field = d.str(f["field"], path+".field")
	default:
		d.fail(n, path, "needs a date (2026-12-24) or a field holding one")
	}
	if v := f["offset"]; v != nil {
		if raw := d.str(v, path+".offset"); raw != "" {
			o, err := ParseOffset(raw)
			if err != nil {
				d.fail(v, path+".offset", "%s", err)
			} else {
				w.Offset = &o
			}
		}
	}
	if v := f["at"]; v != nil {
		w.At = d.str(v, path+".at")
		if _, _, err := ParseClock(w.At); err != nil {
			d.fail(v, path+".at", "%s", err)
		}
	}
	return w
}

func (d *decoder) window(n *yaml.Node, path string) *Window {
	w := &Window{}
	f := d.fields(n, path, "days", "from", "to")
	if f == nil {
		return w
	}
	if v := f["days"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			d.fail(v, path+".days", "must be a list such as [mon, tue, wed, thu, fri]")
		} else if !d.tooMany(v, path+".days", "days") {
			for i, day := range v.Content {
				name := strings.ToLower(d.str(day, fmt.Sprintf("%s.days[%d]", path, i)))
				if _, ok := weekdays[name]; !ok && name != "" {
					d.fail(day, fmt.Sprintf("%s.days[%d]", path, i), "%q is not a day (mon, tue, wed, thu, fri, sat, sun)", name)
				}
				w.Days = append(w.Days, name)
			}
		}
	}
	for _, key := range []string{"from", "to"} {
		if f[key] == nil {
			d.fail(n, path+"."+key, "is required (e.g. from: \"09:00\", to: \"17:00\")")
			continue
		}
		val := d.str(f[key], path+"."+key)
		if _, _, err := ParseClock(val); err != nil {
			d.fail(f[key], path+"."+key, "%s", err)
		}
		if key == "from" {
			w.From = val
		} else {
			w.To = val
		}
	}
	if w.From != "" && w.To != "" && w.From >= w.To && len(w.From) == len(w.To) {
		d.fail(n, path, "from %s is not before to %s", w.From, w.To)
	}
	return w
}

func (d *decoder) duration(n *yaml.Node, path string) *Duration {
	raw := d.str(n, path)
	if raw == "" {
		return nil
	}
	w, err := ParseDuration(raw)
	if err != nil {
		d.fail(n, path, "%s", err)
		return nil
	}
	return &w
}

// paths reads the list of a split (percent + steps) or a branch (when + steps, else).
func (d *decoder) paths(n *yaml.Node, path, kind string) []Path {
	if n.Kind != yaml.SequenceNode || len(n.Content) < 2 {
		d.fail(n, path, "must be a list of at least two paths")
		return []Path{}
	}
	if d.tooMany(n, path, "paths") {
		return []Path{}
	}
	out := make([]Path, 0, len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		var pa Path
		if kind == KindSplit {
			f := d.fields(item, p, "percent", "steps")
			if f != nil {
				if f["percent"] == nil {
					d.fail(item, p+".percent", "is required")
				} else if x, err := strconv.Atoi(f["percent"].Value); err != nil || x < 1 || x > 99 {
					d.fail(f["percent"], p+".percent", "must be a whole number from 1 to 99")
				} else {
					pa.Percent = x
				}
				if f["steps"] != nil {
					pa.Steps = d.steps(f["steps"], p+".steps")
				}
			}
		} else {
			f := d.fields(item, p, "when", "steps", "else")
			switch {
			case f == nil:
			case f["else"] != nil:
				if f["when"] != nil || f["steps"] != nil {
					d.fail(item, p, "the default path is just {else: [steps]}")
				}
				pa.Steps = d.steps(f["else"], p+".else")
			default:
				if f["when"] == nil {
					d.fail(item, p+".when", "is required (or write the default path as {else: [steps]})")
				} else {
					c := d.condition(f["when"], p+".when")
					pa.When = &c
				}
				if f["steps"] != nil {
					pa.Steps = d.steps(f["steps"], p+".steps")
				}
			}
		}
		out = append(out, pa)
	}
	return out
}

func (d *decoder) steps(n *yaml.Node, path string) []Step {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list of steps, not %s", describe(n))
		return nil
	}
	d.stepDepth++
	defer func() { d.stepDepth-- }()
	if d.stepDepth > MaxStepDepth && len(n.Content) > 0 {
		d.fail(n, path, "steps nest deeper than %d levels here", MaxStepDepth)
		d.limited = true
		return nil
	}
	out := make([]Step, 0, min(len(n.Content), MaxSteps))
	for i, s := range n.Content {
		if !d.enterStep(s, fmt.Sprintf("%s[%d]", path, i)) {
			break
		}
		out = append(out, d.step(s, fmt.Sprintf("%s[%d]", path, i)))
	}
	return out
}

// pathKeys may stand beside a step kind: the id, and the then/else paths of if and wait_until.
var pathKeys = []string{"id", "then", "else"}

func (d *decoder) step(n *yaml.Node, path string) Step {
	var s Step
	if n.Kind == yaml.ScalarNode && n.Value == KindEnd {
		s.End = true
		return s
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "a step must be a mapping such as {add_tag: vip}, not %s", describe(n))
		return s
	}
	var kinds []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !contains(pathKeys, k) && !contains(Kinds, k) {
			d.fail(n.Content[i], path, "unknown step kind %q (known: %s)", k, strings.Join(Kinds, ", "))
			s.ID = idOf(n) // so jumps to it are not reported missing too
			return s
		}
		if !contains(pathKeys, k) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 1 {
		sort.Strings(kinds)
		d.fail(n, path, "has %s: a step does exactly one thing", strings.Join(kinds, " and "))
		return s
	}
	f := d.fields(n, path, append(append([]string{}, pathKeys...), Kinds...)...)
	if v := f["id"]; v != nil {
		s.ID = d.str(v, path+".id")
	}
	if v := f[KindAddTag]; v != nil {
		s.AddTag = d.str(v, path+".add_tag")
		if s.AddTag == "" && v.Kind == yaml.ScalarNode {
			d.fail(v, path+".add_tag", "needs a tag name")
		}
	}
	if v := f[KindWait]; v != nil {
		if raw := d.str(v, path+".wait"); raw != "" {
			w, err := ParseDuration(raw)
			if err != nil {
				d.fail(v, path+".wait", "%s", err)
			} else {
				s.Wait = &w
			}
		}
	}
	if v := f[KindSendEmail]; v != nil {
		s.SendEmail = &SendEmail{}
		if e := d.fields(v, path+".send_email", "template", "at", "if_capped", "transactional"); e != nil {
			if e["template"] != nil {
				s.SendEmail.Template = d.str(e["template"], path+".send_email.template")
			}
			if e["at"] != nil {
				s.SendEmail.At = d.str(e["at"], path+".send_email.at")
			}
			s.SendEmail.SendRules = d.sendRules(e, path+".send_email")
		}
	}
	if v := f[KindIf]; v != nil {
		c := d.condition(v, path+".if")
		s.If = &c
	}
	if v := f[KindWaitUntil]; v != nil {
		s.WaitUntil = &WaitUntil{}
		if w := d.fields(v, path+".wait_until", "condition", "timeout"); w != nil {
			if w["condition"] == nil {
				d.fail(v, path+".wait_until.condition", "is required")
			} else {
				s.WaitUntil.Condition = d.condition(w["condition"], path+".wait_until.condition")
			}
			if t := w["timeout"]; t != nil {
				if raw := d.str(t, path+".wait_until.timeout"); raw != "" {
					dur, err := ParseDuration(raw)
					if err != nil {
						d.fail(t, path+".wait_until.timeout", "%s", err)
					} else {
						s.WaitUntil.Timeout = &dur
					}
				}
			}
		}
	}
	if v := f[KindGoto]; v != nil {
		s.Goto = &Goto{Max: 1}
		if v.Kind == yaml.ScalarNode {
			s.Goto.Step = d.str(v, path+".goto")
		} else if g := d.fields(v, path+".goto", "step", "max"); g != nil {
			if g["step"] != nil {
				s.Goto.Step = d.str(g["step"], path+".goto.step")
			} else {
				d.fail(v, path+".goto.step", "is required")
			}
			if m := g["max"]; m != nil {
				if x, err := strconv.Atoi(m.Value); err != nil {
					d.fail(m, path+".goto.max", "must be a whole number")
				} else {
					s.Goto.Max = x
				}
			}
		}
	}
	d.actions(f, &s, path)
	if v := f[KindDate]; v != nil {
		s.WaitUntilDate = d.dateWait(v, path+"."+KindDate)
	}
	if v := f[KindWindow]; v != nil {
		s.WaitForWindow = d.window(v, path+"."+KindWindow)
	}
	if v := f[KindSplit]; v != nil {
		s.Split = d.paths(v, path+".split", KindSplit)
	}
	if v := f[KindBranch]; v != nil {
		s.Branch = d.paths(v, path+".branch", KindBranch)
	}
	if v := f[KindSplitTest]; v != nil {
		s.SplitTest = d.splitTest(v, path+"."+KindSplitTest)
	}
	if v := f[KindBestTime]; v != nil {
		s.WaitForBestTime = d.bestTime(v, path+"."+KindBestTime)
	}
	if v := f["then"]; v != nil {
		s.Then = d.steps(v, path+".then")
	}
	if v := f["else"]; v != nil {
		s.Else = d.steps(v, path+".else")
	}
	if v := f[KindEnd]; v != nil {
		if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "") {
			d.fail(v, path+".end", "must be true")
		}
		s.End = true
	}
	return s
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return quote(n.Value)
}

// quote quotes a value for a message, shortened when long: a problem names it, it need not
// repeat a whole document.
func quote(s string) string {
	if r := []rune(s); len(r) > 60 {
		return fmt.Sprintf("%q…", string(r[:60]))
	}
	return fmt.Sprintf("%q", s)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// where reads a property filter ({currency: EUR}) into into (made when nil).
func (d *decoder) where(n *yaml.Node, path string, into map[string]any) map[string]any {
	if n.Kind != yaml.MappingNode {
		d.fail(n, join(path, "where"), "must be a mapping of property: value")
		return into
	}
	if into == nil {
		into = map[string]any{}
	}
	if d.tooMany(n, join(path, "where"), "properties") {
		return into
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		p, v := join(path, "where."+n.Content[i].Value), n.Content[i+1]
		if v.Kind == yaml.MappingNode && len(v.Content) == 2 && v.Content[0].Value == TriggerRef {
			d.fail(v.Content[0], join(p, TriggerRef), triggerInTrigger)
			continue
		}
		into[n.Content[i].Value] = d.scalar(v, p)
	}
	return into
}

// idOf is the id a step mapping gives, or "".
func idOf(n *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}
