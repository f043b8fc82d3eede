package journey

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits on one document. Each is far beyond what a person writes, and together they keep
// what Cairn accepts answerable: a condition within them compiles to SQL that PostgreSQL runs
// (its parameter limit, its parser's stack), and checking a document costs time in proportion
// to its size. The decoder checks them as it walks, so a document past one is refused, with
// the path where it went past, without the rest of it being read: a condition nested ten
// thousand deep is refused at level 33.
const (
	// MaxDocumentBytes bounds a journey or segment document.
	MaxDocumentBytes = 256 << 10
	// MaxConditionDepth bounds how deep conditions nest, counting each all, any and not on the
	// way down and the innermost test: {not: {tag: a}} is 2 deep.
	MaxConditionDepth = 32
	// MaxStepDepth bounds how deep steps nest: top-level steps are at depth 1, the steps of
	// their if, branch, split or wait_until paths at 2.
	MaxStepDepth = 16
	// MaxListItems bounds every list of the document: the conditions of an all or an any, the
	// paths of a branch or split, triggers, goals, window days, and the entries of a where or
	// update_fields mapping.
	MaxListItems = 1000
	// MaxConditionNodes bounds the conditions of a document, every all, any, not and test
	// counted. A test compiles to at most 8 SQL parameters, so one condition stays well within
	// PostgreSQL's 65,535.
	MaxConditionNodes = 5000
	// MaxSteps bounds a journey's steps, nested ones included.
	MaxSteps = 500
	// MaxProblems bounds the problems one error lists; the rest are counted.
	MaxProblems = 100
)

// Parse reads a YAML or JSON document into its top node after checking its size, for callers
// that read a condition out of a larger document (a segment's) with DecodeSegmentCondition.
func Parse(doc []byte) (*yaml.Node, error) {
	return parse(doc, "the document is empty")
}

func parse(doc []byte, empty string) (*yaml.Node, error) {
	if len(doc) > MaxDocumentBytes {
		return nil, &ValidationError{Problems: []Problem{{Message: fmt.Sprintf("the document is %d bytes: at most %d (%d KiB) are allowed", len(doc), MaxDocumentBytes, MaxDocumentBytes>>10)}}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, &ValidationError{Problems: []Problem{{Message: "not valid YAML or JSON: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	if len(root.Content) == 0 || len(bytes.TrimSpace(doc)) == 0 {
		return nil, &ValidationError{Problems: []Problem{{Message: empty}}}
	}
	return root.Content[0], nil
}

// tooMany reports a list (or mapping) with more than MaxListItems items; its items are then
// not read.
func (d *decoder) tooMany(n *yaml.Node, path, what string) bool {
	items := len(n.Content)
	if n.Kind == yaml.MappingNode {
		items /= 2
	}
	if items <= MaxListItems {
		return false
	}
	d.fail(n, path, "has %d %s: at most %d are allowed", items, what, MaxListItems)
	d.limited = true
	return true
}

// enterCondition counts a condition and checks its depth (the caller keeps d.depth); false
// means a limit is passed (the count is reported once) and the condition must not be read.
func (d *decoder) enterCondition(n *yaml.Node, path string) bool {
	d.nodes++
	if d.nodes > MaxConditionNodes {
		d.limited = true
		if d.nodes == MaxConditionNodes+1 {
			d.fail(n, path, "is condition number %d of the document: at most %d are allowed (every all, any, not and test counts)", d.nodes, MaxConditionNodes)
		}
		return false
	}
	if d.depth > MaxConditionDepth {
		d.fail(n, path, "conditions nest deeper than %d levels here", MaxConditionDepth)
		d.limited = true
		return false
	}
	return true
}

// enterStep counts a step; false means the journey has too many (reported once).
func (d *decoder) enterStep(n *yaml.Node, path string) bool {
	d.stepCount++
	d.limited = d.limited || d.stepCount > MaxSteps
	if d.stepCount == MaxSteps+1 {
		d.fail(n, path, "is step number %d of the journey: at most %d are allowed (nested steps count)", d.stepCount, MaxSteps)
	}
	return d.stepCount <= MaxSteps
}

// err is the decoder's problems as an error, or nil.
func (d *decoder) err() error {
	if len(d.probs) == 0 {
		return nil
	}
	probs := d.probs
	if d.more > 0 {
		probs = append(probs, Problem{Message: fmt.Sprintf("and %d more problems", d.more)})
	}
	return &ValidationError{Problems: probs}
}

// CheckSegmentCondition reports what makes a condition built in code unfit for a segment:
// the document limits above, and since_entry, which only has a meaning in a journey.
// DecodeSegmentCondition checks the same as it reads a document.
func CheckSegmentCondition(c *Condition, path string) []Problem {
	l := &limiter{segment: true}
	l.condition(c, path, 1)
	return l.probs
}

// limiter checks a decoded journey or condition against the limits (for values built in code
// rather than decoded; Validate runs it too). It never descends past a limit.
type limiter struct {
	probs        []Problem
	nodes, steps int
	segment      bool
}

func (l *limiter) add(path, format string, args ...any) {
	if len(l.probs) < MaxProblems {
		l.probs = append(l.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
}

func (l *limiter) condition(c *Condition, path string, depth int) {
	if l.nodes++; l.nodes > MaxConditionNodes {
		if l.nodes == MaxConditionNodes+1 {
			l.add(path, "is condition number %d: at most %d are allowed (every all, any, not and test counts)", l.nodes, MaxConditionNodes)
		}
		return
	}
	if depth > MaxConditionDepth {
		l.add(path, "conditions nest deeper than %d levels here", MaxConditionDepth)
		return
	}
	for _, list := range []struct {
		key  string
		list []Condition
	}{{"all", c.All}, {"any", c.Any}} {
		if len(list.list) > MaxListItems {
			l.add(join(path, list.key), "has %d conditions: at most %d are allowed", len(list.list), MaxListItems)
			continue
		}
		for i := range list.list {
			l.condition(&list.list[i], fmt.Sprintf("%s[%d]", join(path, list.key), i), depth+1)
		}
	}
	if c.Not != nil {
		l.condition(c.Not, join(path, "not"), depth+1)
	}
	if e := c.Event; e != nil {
		if n := len(e.Where) + len(e.Keys); n > MaxListItems {
			l.add(join(path, "where"), "has %d properties: at most %d are allowed", n, MaxListItems)
		}
		if l.segment && e.SinceEntry {
			l.add(join(path, "since_entry"), sinceEntryInSegment)
		}
		if l.segment && len(e.Keys) > 0 {
			l.add(join(path, "where"), triggerInSegment)
		}
	}
	if o := c.Object; o != nil {
		if n := len(o.Where) + len(o.Keys); n > MaxListItems {
			l.add(join(path, "where"), "has %d properties: at most %d are allowed", n, MaxListItems)
		}
		if len(o.Fields) > MaxListItems {
			l.add(path, "has %d field tests: at most %d are allowed", len(o.Fields), MaxListItems)
		}
		if l.segment && len(o.Keys) > 0 {
			l.add(join(path, "where"), triggerInSegment)
		}
	}
}

// sinceEntryInSegment says why a segment cannot use since_entry.
const sinceEntryInSegment = "only has a meaning in a journey (since the contact entered it); a segment has no entry: use within or between"

func (l *limiter) journey(j *Journey) {
	if len(j.Triggers) > MaxListItems {
		l.add("triggers", "has %d triggers: at most %d are allowed", len(j.Triggers), MaxListItems)
	}
	for i, t := range j.Triggers {
		if len(t.Where) > MaxListItems {
			l.add(fmt.Sprintf("triggers[%d].where", i), "has %d properties: at most %d are allowed", len(t.Where), MaxListItems)
		}
	}
	if j.Entry != nil {
		l.condition(j.Entry, "entry", 1)
	}
	if j.Exit != nil {
		l.condition(j.Exit, "exit", 1)
	}
	if len(j.Goals) > MaxListItems {
		l.add("goals", "has %d goals: at most %d are allowed", len(j.Goals), MaxListItems)
	} else {
		for i := range j.Goals {
			l.condition(&j.Goals[i].When, fmt.Sprintf("goals[%d].when", i), 1)
		}
	}
	for _, ch := range Channels {
		if cp := j.Policy.For(ch); cp != nil && len(cp.Caps) > MaxListItems {
			l.add("policy."+ch+".caps", "has %d caps: at most %d are allowed", len(cp.Caps), MaxListItems)
		}
	}
	l.stepList(j.Steps, "steps", 1)
}

func (l *limiter) stepList(steps []Step, path string, depth int) {
	if len(steps) == 0 {
		return
	}
	if depth > MaxStepDepth {
		l.add(path, "steps nest deeper than %d levels here", MaxStepDepth)
		return
	}
	for i := range steps {
		s := &steps[i]
		p := fmt.Sprintf("%s[%d]", path, i)
		if l.steps++; l.steps > MaxSteps {
			if l.steps == MaxSteps+1 {
				l.add(p, "is step number %d of the journey: at most %d are allowed (nested steps count)", l.steps, MaxSteps)
			}
			return
		}
		if len(s.UpdateFields) > MaxListItems {
			l.add(p+".update_fields", "has %d fields: at most %d are allowed", len(s.UpdateFields), MaxListItems)
		}
		if s.If != nil {
			l.condition(s.If, p+".if", 1)
		}
		if s.WaitUntil != nil {
			l.condition(&s.WaitUntil.Condition, p+".wait_until.condition", 1)
		}
		if w := s.WaitForWindow; w != nil && len(w.Days) > MaxListItems {
			l.add(p+".wait_for_window.days", "has %d days: at most %d are allowed", len(w.Days), MaxListItems)
		}
		for _, kind := range []struct {
			key   string
			paths []Path
		}{{KindSplit, s.Split}, {KindBranch, s.Branch}} {
			if len(kind.paths) > MaxListItems {
				l.add(p+"."+kind.key, "has %d paths: at most %d are allowed", len(kind.paths), MaxListItems)
				continue
			}
			for k := range kind.paths {
				pp := fmt.Sprintf("%s.%s[%d]", p, kind.key, k)
				if kind.paths[k].When != nil {
					l.condition(kind.paths[k].When, pp+".when", 1)
				}
				l.stepList(kind.paths[k].Steps, pp+".steps", depth+1)
			}
		}
		if t := s.SplitTest; t != nil {
			if len(t.Variants) > MaxListItems {
				l.add(p+".split_test.variants", "has %d variants: at most %d are allowed", len(t.Variants), MaxListItems)
			} else {
				for k := range t.Variants {
					l.stepList(t.Variants[k].Steps, fmt.Sprintf("%s.split_test.variants[%d].steps", p, k), depth+1)
				}
			}
		}
		l.stepList(s.Then, p+".then", depth+1)
		l.stepList(s.Else, p+".else", depth+1)
	}
}
