package journey

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Step kinds of experiments and learned timing.
const (
	KindSplitTest = "split_test"
	KindBestTime  = "wait_for_best_time"
)

// SplitTest sends contacts down one of its variants, evenly, until it is decided; from then
// on every contact takes the winner. Metric is what a variant is judged by: opened or clicked
// (an email its steps sent), or goal:<id> (the run met that goal).
type SplitTest struct {
	Variants []Variant `json:"variants"`
	Metric   string    `json:"metric"`
	// MinSample is how many contacts each variant needs before the test may be decided.
	MinSample int `json:"min_sample"`
	// Confidence is the chance that a winner declared by the test is not a fluke (0.95: a
	// false winner at most 5 times in 100 tests of variants that are alike).
	Confidence float64 `json:"confidence"`
	// MaxDuration, counted from the first contact, ends the test without a significant
	// difference: Default wins when declared, else the variant leading then.
	MaxDuration Duration `json:"max_duration"`
	Default     string   `json:"default,omitempty"`
}

// Variant is one way through a split test.
type Variant struct {
	ID    string `json:"id"`
	Steps []Step `json:"steps"`
}

// Split test defaults: what a document that leaves these out gets.
const (
	DefaultMinSample  = 100
	DefaultConfidence = 0.95
	DefaultTestLength = 14 * 24 * time.Hour
)

// Metrics a split test may be judged by (and goal:<id>).
const (
	MetricOpened  = "opened"
	MetricClicked = "clicked"
	metricGoal    = "goal:"
)

// Goal is the goal a goal:<id> metric names, or "".
func (t SplitTest) Goal() string {
	if strings.HasPrefix(t.Metric, metricGoal) {
		return strings.TrimPrefix(t.Metric, metricGoal)
	}
	return ""
}

// Variant returns the variant with the given id, or nil.
func (t *SplitTest) Variant(id string) *Variant {
	for i := range t.Variants {
		if t.Variants[i].ID == id {
			return &t.Variants[i]
		}
	}
	return nil
}

// SplitTests lists the journey's split_test steps, nested ones included, in document order.
func (j *Journey) SplitTests() []Step {
	var out []Step
	walk(j.Steps, func(s *Step) {
		if s.SplitTest != nil {
			out = append(out, *s)
		}
	})
	return out
}

// VariantStepIDs lists the ids of a variant's steps, nested ones included: the steps whose
// emails count for it.
func (v Variant) VariantStepIDs() []string {
	var out []string
	walk(v.Steps, func(s *Step) { out = append(out, s.ID) })
	return out
}

// BestTime holds the contact until its best hour of the week within the coming Within: the
// hour its own opens and clicks say it engages most, else the one every contact's do, else
// the next opening of Window (or at once, without one). Window, when set, also bounds the
// hours chosen.
type BestTime struct {
	Within Duration `json:"within"`
	Window *Window  `json:"window,omitempty"`
}

// DefaultBestTimeWithin is how far ahead send_email's at: best_time looks.
const DefaultBestTimeWithin = 24 * time.Hour

// BestTimeWait is the wait a step makes for its best time: a wait_for_best_time step's, or a
// send_email's at: best_time (within a day); nil for other steps.
func (s Step) BestTimeWait() *BestTime {
	switch {
	case s.WaitForBestTime != nil:
		return s.WaitForBestTime
	case s.SendEmail != nil && s.SendEmail.At == AtBestTime:
		return &BestTime{Within: Duration{DefaultBestTimeWithin}}
	}
	return nil
}

var variantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func (d *decoder) splitTest(n *yaml.Node, path string) *SplitTest {
	t := &SplitTest{MinSample: DefaultMinSample, Confidence: DefaultConfidence, MaxDuration: Duration{DefaultTestLength}}
	f := d.fields(n, path, "variants", "metric", "min_sample", "confidence", "max_duration", "default")
	if f == nil {
		return t
	}
	d.required(f, n, path, "variants", "metric")
	if v := f["variants"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			d.fail(v, path+".variants", "must be a list of variants such as [{id: a, steps: [...]}, {id: b, steps: [...]}]")
		} else if !d.tooMany(v, path+".variants", "variants") {
			t.Variants = []Variant{}
			for i, item := range v.Content {
				p := fmt.Sprintf("%s.variants[%d]", path, i)
				var va Variant
				if g := d.fields(item, p, "id", "steps"); g != nil {
					d.required(g, item, p, "id", "steps")
					va.ID = d.optStr(g["id"], p+".id")
					if g["steps"] != nil {
						va.Steps = d.steps(g["steps"], p+".steps")
					}
				}
				t.Variants = append(t.Variants, va)
			}
		}
	}
	if v := f["metric"]; v != nil {
		t.Metric = d.str(v, path+".metric")
	}
	if v := f["min_sample"]; v != nil {
		t.MinSample = d.integer(v, path+".min_sample")
	}
	if v := f["confidence"]; v != nil {
		t.Confidence = d.number(v, path+".confidence")
	}
	if v := f["max_duration"]; v != nil {
		t.MaxDuration = Duration{}
		if dur := d.duration(v, path+".max_duration"); dur != nil {
			t.MaxDuration = *dur
		}
	}
	if v := f["default"]; v != nil {
		t.Default = d.str(v, path+".default")
	}
	return t
}

func (d *decoder) bestTime(n *yaml.Node, path string) *BestTime {
	b := &BestTime{}
	f := d.fields(n, path, "within", "window")
	if f == nil {
		return b
	}
	d.required(f, n, path, "within")
	if v := f["within"]; v != nil {
		if dur := d.duration(v, path+".within"); dur != nil {
			b.Within = *dur
		}
	}
	if v := f["window"]; v != nil {
		b.Window = d.window(v, path+".window")
	}
	return b
}

// checkSplitTest validates a split test at path (steps[3].split_test).
func (v *validator) checkSplitTest(t *SplitTest, path string, goals map[string]bool) {
	if len(t.Variants) < 2 {
		v.add(path+".variants", "a split test needs at least two variants")
	}
	ids := map[string]bool{}
	for i, va := range t.Variants {
		p := fmt.Sprintf("%s.variants[%d]", path, i)
		switch {
		case !variantIDPattern.MatchString(va.ID):
			v.add(p+".id", "%q must be lower-case letters, digits, '-' or '_', starting with a letter or digit (at most 32)", va.ID)
		case ids[va.ID]:
			v.add(p+".id", "%q names two variants", va.ID)
		}
		ids[va.ID] = true
		if len(va.Steps) == 0 {
			v.add(p+".steps", "a variant needs at least one step")
			continue
		}
		if t.Metric == MetricOpened || t.Metric == MetricClicked {
			sends := false
			walk(va.Steps, func(s *Step) { sends = sends || s.SendEmail != nil })
			if !sends {
				v.add(p+".steps", "send no email, so the metric %s cannot be measured for this variant", t.Metric)
			}
		}
	}
	switch g := t.Goal(); {
	case t.Metric == MetricOpened, t.Metric == MetricClicked:
	case g != "" && !goals[g]:
		v.add(path+".metric", "%q names no goal of this journey", t.Metric)
	case g == "":
		v.add(path+".metric", "%q is not one of opened, clicked, goal:<goal id>", t.Metric)
	}
	if t.MinSample < 1 || t.MinSample > 1000000 {
		v.add(path+".min_sample", "must be a whole number from 1 to 1000000 (contacts per variant before deciding)")
	}
	if t.Confidence < 0.5 || t.Confidence >= 1 {
		v.add(path+".confidence", "%s must be at least 0.5 and below 1 (0.95 is usual)", strconv.FormatFloat(t.Confidence, 'g', -1, 64))
	}
	if t.MaxDuration.D <= 0 {
		v.add(path+".max_duration", "must be longer than zero")
	}
	if t.Default != "" && !ids[t.Default] {
		v.add(path+".default", "%q is not one of the variants", t.Default)
	}
}

// checkBestTime validates a wait_for_best_time at path.
func (v *validator) checkBestTime(b *BestTime, path string) {
	if b.Within.D < time.Hour || b.Within.D > 7*24*time.Hour {
		v.add(path+".within", "must be from 1h to 7d (the best hour is looked for within it)")
	}
}

// checkSendAt validates send_email's at.
func (v *validator) checkSendAt(e *SendEmail, path string) {
	if e.At != "" && e.At != AtBestTime {
		v.add(path+".send_email.at", "%q is not best_time (the only time a send waits for)", e.At)
	}
}
