// Package journey is Cairn's journey language: the types a journey document decodes into,
// decoding from YAML or JSON, and validation that reports every problem with its path.
// It is pure: no I/O, no Temporal.
package journey

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // time zones the same on every machine, whatever it has installed
)

// Journey is one automation: what starts it and the steps a contact walks through.
// It is also the pinned definition a running ContactJourney carries, so its JSON form is stable.
type Journey struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Triggers start the journey for a contact; any one of them suffices.
	Triggers []Trigger `json:"triggers"`
	// Entry, when set, must hold for the contact at the trigger, or the journey does not start.
	Entry *Condition `json:"entry,omitempty"`
	// Reentry says whether a contact who has been through the journey may enter again.
	Reentry Reentry `json:"reentry"`
	// Key, when set, names a property of the trigger event: the contact then has one run per
	// value of it (one per cart for cart_id), each with its own re-entry rule; a trigger
	// without the property starts the contact's one run without a key.
	Key string `json:"key,omitempty"`
	// Timezone (IANA, e.g. Europe/Lisbon) is used for contacts without a timezone field.
	Timezone string `json:"timezone,omitempty"`
	// Exit takes the contact out of the journey the moment it holds (checked at entry and
	// whenever an event it depends on arrives).
	Exit *Condition `json:"exit,omitempty"`
	// Goals jump a contact ahead to a top-level step the moment their condition holds.
	Goals []Goal `json:"goals,omitempty"`
	// Policy, when set, replaces the worker's default frequency caps and quiet hours for this
	// journey's sends, per channel.
	Policy *Policy `json:"policy,omitempty"`
	Steps  []Step  `json:"steps"`
}

// Goal is a condition plus a target step. When it becomes true while the contact is before
// the target, whatever the contact is doing (a wait, a wait-until, an activity not yet
// started) is cancelled and the contact jumps to the target. OnReach says what a contact
// that reaches the target without having met the goal does.
type Goal struct {
	ID   string    `json:"id"`
	When Condition `json:"when"`
	Then string    `json:"then"`
	// OnReach is continue (the default), wait (until met; WaitTimeout bounds it, after which
	// the contact continues) or end.
	OnReach     string    `json:"on_reach,omitempty"`
	WaitTimeout *Duration `json:"wait_timeout,omitempty"`
}

// What a contact reaching a goal's step without having met it does.
const (
	OnReachContinue = "continue"
	OnReachWait     = "wait"
	OnReachEnd      = "end"
)

// Reentry is the re-entry rule. A contact is never in a journey twice at once.
type Reentry struct {
	// Mode is always (the default: again after each run ends), once (once ever) or after
	// (again only once Wait has passed since the last run ended).
	Mode string    `json:"mode"`
	Wait *Duration `json:"wait,omitempty"`
}

// Re-entry modes.
const (
	ReentryAlways = "always"
	ReentryOnce   = "once"
	ReentryAfter  = "after"
)

// TriggerEvents lists the event names the journey's triggers listen for, sorted.
func (j *Journey) TriggerEvents() []string {
	set := map[string]bool{}
	for _, t := range j.Triggers {
		set[t.Event] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TriggeredBy returns the first trigger the event matches, or nil.
func (j *Journey) TriggeredBy(name string, props map[string]any) *Trigger {
	for i, t := range j.Triggers {
		if t.Matches(name, props) {
			return &j.Triggers[i]
		}
	}
	return nil
}

// Step is one thing the journey does. Exactly one of the kind fields is set; Kind names it.
type Step struct {
	// ID names the step in Temporal UI, in the state query and in idempotency keys.
	// When a document leaves it out, Decode assigns "<position>-<kind>" (e.g. "2-wait").
	ID string `json:"id"`

	AddTag             string         `json:"add_tag,omitempty"`
	Wait               *Duration      `json:"wait,omitempty"`
	SendEmail          *SendEmail     `json:"send_email,omitempty"`
	End                bool           `json:"end,omitempty"`
	If                 *Condition     `json:"if,omitempty"`
	WaitUntil          *WaitUntil     `json:"wait_until,omitempty"`
	Goto               *Goto          `json:"goto,omitempty"`
	RemoveTag          string         `json:"remove_tag,omitempty"`
	UpdateFields       map[string]any `json:"update_fields,omitempty"`
	AdjustScore        *ScoreChange   `json:"adjust_score,omitempty"`
	Subscribe          string         `json:"subscribe,omitempty"`
	Unsubscribe        string         `json:"unsubscribe,omitempty"`
	CreateDeal         *Deal          `json:"create_deal,omitempty"`
	MoveDeal           *DealMove      `json:"move_deal,omitempty"`
	CreateTask         *Task          `json:"create_task,omitempty"`
	AddNote            string         `json:"add_note,omitempty"`
	StartJourney       string         `json:"start_journey,omitempty"`
	SendSMS            *Message       `json:"send_sms,omitempty"`
	Notify             *Message       `json:"notify,omitempty"`
	AddToAudience      string         `json:"add_to_audience,omitempty"`
	RemoveFromAudience string         `json:"remove_from_audience,omitempty"`

	// WaitUntilDate and WaitForWindow are the calendar waits.
	WaitUntilDate *DateWait `json:"wait_until_date,omitempty"`
	WaitForWindow *Window   `json:"wait_for_window,omitempty"`
	Split         []Path    `json:"split,omitempty"`
	Branch        []Path    `json:"branch,omitempty"`
	// SplitTest tries variants on contacts and sends the rest down the winner;
	// WaitForBestTime waits for the contact's best hour.
	SplitTest       *SplitTest `json:"split_test,omitempty"`
	WaitForBestTime *BestTime  `json:"wait_for_best_time,omitempty"`

	// Then and Else are the two paths of an if (condition holds / does not) and of a
	// wait_until (condition met / timed out). After either, the journey goes on with the
	// step after this one.
	Then []Step `json:"then,omitempty"`
	Else []Step `json:"else,omitempty"`
}

// Goto jumps back (or ahead) to a top-level step, at most Max times per run; after that the
// journey goes on past the goto. A loop back must contain a wait.
type Goto struct {
	Step string `json:"step"`
	Max  int    `json:"max"`
}

// Path is one way through a split (Percent of contacts, drawn once per run and recorded in
// history) or a branch (the first path whose When holds; a path without When is the default).
type Path struct {
	Percent int        `json:"percent,omitempty"`
	When    *Condition `json:"when,omitempty"`
	Steps   []Step     `json:"steps"`
}

// WaitUntil holds the contact until the condition holds, re-checked whenever an event it
// depends on arrives; Timeout (optional) bounds the wait.
type WaitUntil struct {
	Condition Condition `json:"condition"`
	Timeout   *Duration `json:"timeout,omitempty"`
}

// SendEmail sends a template to the contact; At (best_time) makes it wait for the contact's
// best hour within a day first.
type SendEmail struct {
	Template string `json:"template"`
	At       string `json:"at,omitempty"`
	SendRules
}

// Step kinds, as written in documents.
const (
	KindAddTag    = "add_tag"
	KindWait      = "wait"
	KindSendEmail = "send_email"
	KindEnd       = "end"
	KindIf        = "if"
	KindWaitUntil = "wait_until"
	KindGoto      = "goto"
	KindSplit     = "split"
	KindBranch    = "branch"
	KindDate      = "wait_until_date"
	KindWindow    = "wait_for_window"
)

// Kinds lists the step kinds in the order documentation shows them.
var Kinds = append(append([]string{}, ActionKinds...), KindWait, KindWaitUntil, KindDate, KindWindow, KindBestTime, KindIf, KindBranch, KindSplit, KindSplitTest, KindGoto, KindEnd)

// Kind names the step's kind, or "" for a step with none set.
func (s Step) Kind() string {
	switch {
	case s.AddTag != "":
		return KindAddTag
	case s.Wait != nil:
		return KindWait
	case s.SendEmail != nil:
		return KindSendEmail
	case s.End:
		return KindEnd
	case s.If != nil:
		return KindIf
	case s.WaitUntil != nil:
		return KindWaitUntil
	case s.Goto != nil:
		return KindGoto
	case s.Split != nil:
		return KindSplit
	case s.Branch != nil:
		return KindBranch
	case s.WaitUntilDate != nil:
		return KindDate
	case s.WaitForWindow != nil:
		return KindWindow
	case s.SplitTest != nil:
		return KindSplitTest
	case s.WaitForBestTime != nil:
		return KindBestTime
	}
	return s.actionKind()
}

// IsAction reports whether the step is an effect (run as an idempotent activity).
func (s Step) IsAction() bool {
	for _, k := range ActionKinds {
		if k == s.Kind() {
			return true
		}
	}
	return false
}

// paths lists the step lists nested in s with the label their ids carry ("then", "1", ...).
func (s *Step) paths() []struct {
	label string
	steps *[]Step
} {
	var out []struct {
		label string
		steps *[]Step
	}
	add := func(label string, steps *[]Step) {
		out = append(out, struct {
			label string
			steps *[]Step
		}{label, steps})
	}
	if len(s.Then) > 0 {
		add("then", &s.Then)
	}
	if len(s.Else) > 0 {
		add("else", &s.Else)
	}
	for i := range s.Split {
		add(fmt.Sprint(i+1), &s.Split[i].Steps)
	}
	for i := range s.Branch {
		add(fmt.Sprint(i+1), &s.Branch[i].Steps)
	}
	if s.SplitTest != nil {
		for i := range s.SplitTest.Variants {
			add(s.SplitTest.Variants[i].ID, &s.SplitTest.Variants[i].Steps)
		}
	}
	return out
}

// Summary is a short human sentence for the step, used as Temporal UI summaries.
func (s Step) Summary() string {
	switch s.Kind() {
	case KindAddTag:
		return "add tag " + s.AddTag
	case KindWait:
		return "wait " + s.Wait.String()
	case KindSendEmail:
		if s.SendEmail.At == AtBestTime {
			return "send email " + s.SendEmail.Template + " at the best time"
		}
		return "send email " + s.SendEmail.Template
	case KindEnd:
		return "end"
	case KindIf:
		return "if " + s.If.String()
	case KindWaitUntil:
		if s.WaitUntil.Timeout != nil {
			return fmt.Sprintf("wait until %s (at most %s)", s.WaitUntil.Condition, s.WaitUntil.Timeout)
		}
		return "wait until " + s.WaitUntil.Condition.String()
	case KindGoto:
		return fmt.Sprintf("go to %s (at most %d times)", s.Goto.Step, s.Goto.Max)
	case KindSplit:
		parts := make([]string, len(s.Split))
		for i, p := range s.Split {
			parts[i] = fmt.Sprintf("%d%%", p.Percent)
		}
		return "random split " + strings.Join(parts, "/")
	case KindBranch:
		return fmt.Sprintf("branch on %d conditions", len(s.Branch))
	case KindDate:
		w := s.WaitUntilDate
		what := w.Date
		if w.Field != "" {
			what = "field " + w.Field
		}
		if w.Offset != nil {
			what += " " + w.Offset.String()
		}
		if w.At != "" {
			what += " at " + w.At
		}
		return "wait until " + what
	case KindWindow:
		return fmt.Sprintf("wait for %s %s–%s", strings.Join(s.WaitForWindow.Days, ","), s.WaitForWindow.From, s.WaitForWindow.To)
	case KindSplitTest:
		ids := make([]string, len(s.SplitTest.Variants))
		for i, v := range s.SplitTest.Variants {
			ids[i] = v.ID
		}
		return fmt.Sprintf("split test %s by %s", strings.Join(ids, "/"), s.SplitTest.Metric)
	case KindBestTime:
		return "wait for the best time within " + s.WaitForBestTime.Within.String()
	}
	return s.actionSummary()
}

// Interests lists the events a running journey wants to hear about: those its exit and
// wait_until conditions depend on. The dispatcher signals enrolled contacts' runs only
// for these.
func (j *Journey) Interests() []string {
	set := map[string]bool{}
	if j.Exit != nil {
		j.Exit.collectEvents(set, false)
	}
	for _, g := range j.Goals {
		g.When.collectEvents(set, false)
	}
	walk(j.Steps, func(s *Step) {
		if s.WaitUntil != nil {
			s.WaitUntil.Condition.collectEvents(set, false)
		}
	})
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// walk visits every step, nested ones included, depth first.
func walk(steps []Step, fn func(*Step)) {
	for i := range steps {
		fn(&steps[i])
		for _, p := range steps[i].paths() {
			walk(*p.steps, fn)
		}
	}
}

// TopLevel returns the index of the top-level step with the given id, or -1.
func (j *Journey) TopLevel(id string) int {
	for i, s := range j.Steps {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// hasWait reports whether any of the steps (nested ones included) waits.
func hasWait(steps []Step) bool {
	found := false
	walk(steps, func(s *Step) {
		if s.Wait != nil || s.WaitUntil != nil || s.WaitForWindow != nil || s.WaitUntilDate != nil || s.WaitForBestTime != nil {
			found = true
		}
	})
	return found
}

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	stepIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.?!-]{0,127}$`)
)

// Problem is one thing wrong with a document, at a path such as `steps[3].wait`.
type Problem struct {
	Path    string `json:"path"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError carries every problem found in a document, not only the first.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid journey: " + strings.Join(parts, "; ")
}

// Validate checks a decoded journey's meaning (the decoder has already checked its shape).
// A journey built in code past the document limits gets those problems alone.
func (j *Journey) Validate() error {
	l := &limiter{}
	l.journey(j)
	if len(l.probs) > 0 {
		return &ValidationError{Problems: l.probs}
	}
	v := &validator{seen: map[string]string{}, journeyID: j.ID, goals: map[string]bool{}}
	for _, g := range j.Goals {
		v.goals[g.ID] = true
	}
	if j.ID == "" {
		v.add("id", "is required")
	} else if !idPattern.MatchString(j.ID) {
		v.add("id", "%q must be lower-case letters, digits, '-', '_' or '.', starting with a letter or digit (at most 63)", j.ID)
	}
	if len(j.Triggers) == 0 {
		v.add("trigger", "a journey needs a trigger")
	}
	for i, t := range j.Triggers {
		if t.Event == "" {
			path := fmt.Sprintf("triggers[%d]", i)
			if len(j.Triggers) == 1 {
				path = "trigger"
			}
			v.add(path+"."+t.Kind, "names no event")
		}
	}
	if j.Timezone != "" {
		if _, err := time.LoadLocation(j.Timezone); err != nil {
			v.add("timezone", "%q is not an IANA time zone (e.g. Europe/Lisbon)", j.Timezone)
		}
	}
	switch j.Reentry.Mode {
	case ReentryAlways, ReentryOnce:
		if j.Reentry.Wait != nil {
			v.add("reentry.wait", "only applies with mode: after")
		}
	case ReentryAfter:
		if j.Reentry.Wait == nil || j.Reentry.Wait.D <= 0 {
			v.add("reentry.wait", "mode after needs a wait, e.g. 30d")
		}
	default:
		v.add("reentry.mode", "%q is not one of always, once, after", j.Reentry.Mode)
	}
	if len(j.Steps) == 0 {
		v.add("steps", "a journey needs at least one step")
	}
	v.checkPolicy(j.Policy)
	v.steps(j.Steps, "steps")
	v.jumps(j)
	if len(v.probs) > 0 {
		return &ValidationError{Problems: v.probs}
	}
	return nil
}

type validator struct {
	journeyID string
	goals     map[string]bool // goal ids, for split tests' goal:<id> metrics
	probs     []Problem
	seen      map[string]string // step id → path of the step that has it
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) steps(steps []Step, base string) {
	for i, s := range steps {
		path := fmt.Sprintf("%s[%d]", base, i)
		if s.ID != "" {
			if !stepIDPattern.MatchString(s.ID) {
				v.add(path+".id", "%q must be lower-case letters, digits, '-', '_', '.', '?' or '!'", s.ID)
			}
			if first, dup := v.seen[s.ID]; dup {
				v.add(path+".id", "%q is already the id of %s", s.ID, first)
			} else {
				v.seen[s.ID] = path
			}
		}
		switch s.Kind() {
		case "":
			v.add(path, "has no step kind (one of %s)", strings.Join(Kinds, ", "))
		case KindWait:
			if s.Wait.D <= 0 {
				v.add(path+".wait", "must be longer than zero")
			}
		case KindSendEmail:
			if s.SendEmail.Template == "" {
				v.add(path+".send_email.template", "is required")
			}
			v.checkSendAt(s.SendEmail, path)
		case KindSplitTest:
			v.checkSplitTest(s.SplitTest, path+".split_test", v.goals)
		case KindBestTime:
			v.checkBestTime(s.WaitForBestTime, path+".wait_for_best_time")
		case KindStartJourney:
			if s.StartJourney == v.journeyID {
				v.add(path+".start_journey", "a journey cannot start itself (use goto to loop)")
			} else if !idPattern.MatchString(s.StartJourney) {
				v.add(path+".start_journey", "%q is not a journey id", s.StartJourney)
			}
		case KindSendSMS:
			if s.SendSMS.Text == "" {
				v.add(path+".send_sms.text", "is required")
			}
		case KindNotify:
			if s.Notify.Text == "" {
				v.add(path+".notify.text", "is required")
			}
		case KindWaitUntil:
			if t := s.WaitUntil.Timeout; t != nil && t.D <= 0 {
				v.add(path+".wait_until.timeout", "must be longer than zero")
			}
		case KindEnd:
			if i != len(steps)-1 {
				v.add(fmt.Sprintf("%s[%d]", base, i+1), "is unreachable: %s ends the journey", path)
			}
		}
		v.checkSendRules(s, path)
		if (len(s.Then) > 0 || len(s.Else) > 0) && s.Kind() != KindIf && s.Kind() != KindWaitUntil {
			v.add(path, "then/else belong to if and wait_until steps, not to %s", s.Kind())
		}
		if s.Kind() == KindIf && len(s.Then) == 0 && len(s.Else) == 0 {
			v.add(path, "an if needs a then or an else path")
		}
		if s.Kind() == KindSplit {
			total := 0
			for _, p := range s.Split {
				total += p.Percent
			}
			if total != 100 {
				v.add(path+".split", "percentages add up to %d, not 100", total)
			}
		}
		if s.Kind() == KindBranch {
			for k, p := range s.Branch {
				if p.When == nil && k != len(s.Branch)-1 {
					v.add(fmt.Sprintf("%s.branch[%d]", path, k+1), "is unreachable: branch[%d] (the default) catches every contact", k)
				}
			}
		}
		if s.Kind() == KindGoto && (s.Goto.Max < 1 || s.Goto.Max > 1000) {
			v.add(path+".goto.max", "must be between 1 and 1000 (a loop needs a bound)")
		}
		v.steps(s.Then, path+".then")
		v.steps(s.Else, path+".else")
		for k := range s.Split {
			v.steps(s.Split[k].Steps, fmt.Sprintf("%s.split[%d].steps", path, k))
		}
		for k := range s.Branch {
			v.steps(s.Branch[k].Steps, fmt.Sprintf("%s.branch[%d].steps", path, k))
		}
		if s.SplitTest != nil {
			for k := range s.SplitTest.Variants {
				v.steps(s.SplitTest.Variants[k].Steps, fmt.Sprintf("%s.split_test.variants[%d].steps", path, k))
			}
		}
	}
}

// jumps checks goal and goto targets: they must name top-level steps, and a loop back must
// wait somewhere, or it would spin without end within one workflow task.
func (v *validator) jumps(j *Journey) {
	goalIDs := map[string]bool{}
	for i, g := range j.Goals {
		path := fmt.Sprintf("goals[%d]", i)
		if !idPattern.MatchString(g.ID) {
			v.add(path+".id", "%q must be lower-case letters, digits, '-', '_' or '.'", g.ID)
		}
		if goalIDs[g.ID] {
			v.add(path+".id", "%q names two goals", g.ID)
		}
		goalIDs[g.ID] = true
		if j.TopLevel(g.Then) < 0 {
			v.add(path+".then", "%q is not a top-level step of this journey%s", g.Then, v.nestedHint(g.Then))
		}
		switch g.OnReach {
		case "", OnReachContinue, OnReachEnd:
			if g.WaitTimeout != nil {
				v.add(path+".wait_timeout", "only applies with on_reach: wait")
			}
		case OnReachWait:
		default:
			v.add(path+".on_reach", "%q is not one of continue, wait, end", g.OnReach)
		}
	}
	// waits[i] counts the top-level steps before i that wait (theirs or nested), so whether a
	// loop back waits is one subtraction, however many gotos there are.
	waits := make([]int, len(j.Steps)+1)
	for i := range j.Steps {
		waits[i+1] = waits[i]
		if hasWait(j.Steps[i : i+1]) {
			waits[i+1]++
		}
	}
	for top := range j.Steps {
		walk(j.Steps[top:top+1], func(s *Step) {
			if s.Goto == nil {
				return
			}
			path := v.seen[s.ID]
			target := j.TopLevel(s.Goto.Step)
			if target < 0 {
				v.add(path+".goto.step", "%q is not a top-level step of this journey%s", s.Goto.Step, v.nestedHint(s.Goto.Step))
				return
			}
			if target <= top && waits[top+1] == waits[target] {
				v.add(path+".goto", "loops back to %q without a wait or wait_until in between", s.Goto.Step)
			}
		})
	}
}

func (v *validator) nestedHint(id string) string {
	if p, ok := v.seen[id]; ok {
		return " (it is nested at " + p + "; jumps land on top-level steps)"
	}
	return ""
}

// assignIDs gives every step without an id a readable one from its position and kind:
// "2-wait" at the top level, "3-if.then.1-add_tag" inside a path.
func (j *Journey) assignIDs() {
	taken := map[string]bool{}
	walk(j.Steps, func(s *Step) {
		if s.ID != "" {
			taken[s.ID] = true
		}
	})
	assign(j.Steps, "", taken)
}

func assign(steps []Step, prefix string, taken map[string]bool) {
	for i := range steps {
		s := &steps[i]
		if s.ID == "" && s.Kind() != "" {
			base := fmt.Sprintf("%s%d-%s", prefix, i+1, s.Kind())
			id := fitID(base)
			for n := 2; taken[id]; n++ {
				id = fitID(fmt.Sprintf("%s-%d", base, n))
			}
			taken[id] = true
			s.ID = id
		}
		for _, p := range s.paths() {
			assign(*p.steps, s.ID+"."+p.label+".", taken)
		}
	}
}

// LegacyInterests is what Interests said before fields were heard by name (see
// Condition.LegacyEvents), for runs whose histories started then.
func (j *Journey) LegacyInterests() []string {
	set := map[string]bool{}
	if j.Exit != nil {
		j.Exit.collectEvents(set, true)
	}
	for _, g := range j.Goals {
		g.When.collectEvents(set, true)
	}
	walk(j.Steps, func(s *Step) {
		if s.WaitUntil != nil {
			s.WaitUntil.Condition.collectEvents(set, true)
		}
	})
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
