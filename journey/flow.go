package journey

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Where steps are and what follows them: the questions a run's state query ("what comes
// next"), a migration (which steps exist) and the journey page (how the steps connect) ask
// of a journey.

// place is where a step sits: in which list, at which index, and under which step (nil at
// the top level).
type place struct {
	list   []Step
	index  int
	parent *place
}

func (p *place) step() *Step { return &p.list[p.index] }

// locate finds the step with the given id, nested ones included.
func (j *Journey) locate(id string) *place {
	var find func(list []Step, parent *place) *place
	find = func(list []Step, parent *place) *place {
		for i := range list {
			here := &place{list: list, index: i, parent: parent}
			if list[i].ID == id {
				return here
			}
			for _, p := range list[i].paths() {
				if found := find(*p.steps, here); found != nil {
					return found
				}
			}
		}
		return nil
	}
	return find(j.Steps, nil)
}

// Step returns the step with the given id, nested ones included, or nil.
func (j *Journey) Step(id string) *Step {
	if p := j.locate(id); p != nil {
		return p.step()
	}
	return nil
}

// StepAfter is the id of the step a contact goes on to once the step with the given id is
// done and whatever path it took is walked: the next step in its list, or the step after the
// one whose path holds it. "" means the journey ends there (or no step has that id).
func (j *Journey) StepAfter(id string) string {
	p := j.locate(id)
	for p != nil {
		if p.index+1 < len(p.list) {
			return p.list[p.index+1].ID
		}
		p = p.parent
	}
	return ""
}

// FirstOr is the id of the first step of a path, or, for an empty path, the step after id.
func (j *Journey) FirstOr(path []Step, id string) string {
	if len(path) > 0 {
		return path[0].ID
	}
	return j.StepAfter(id)
}

// StepIDs lists the id of every step, nested ones included, in document order.
func (j *Journey) StepIDs() []string {
	var out []string
	walk(j.Steps, func(s *Step) { out = append(out, s.ID) })
	return out
}

// IsWait reports whether a contact spends time at the step: a wait, a wait_until, or a
// calendar wait. A migration moves contacts from one of these.
func (s Step) IsWait() bool {
	switch s.Kind() {
	case KindWait, KindWaitUntil, KindDate, KindWindow, KindBestTime:
		return true
	}
	return false
}

// TemplateRef is an email template a step sends, with the step's path in the document.
type TemplateRef struct {
	Path     string
	Template string
}

// TemplateRefs lists every send_email step's template, with paths as the decoder writes them
// (steps[2].then[0].send_email.template).
func (j *Journey) TemplateRefs() []TemplateRef {
	var out []TemplateRef
	walkPaths(j.Steps, "steps", func(s *Step, path string) {
		if s.SendEmail != nil && s.SendEmail.Template != "" {
			out = append(out, TemplateRef{Path: path + ".send_email.template", Template: s.SendEmail.Template})
		}
	})
	return out
}

// walkPaths visits every step, nested ones included, depth first, with its path as the
// decoder writes it: steps[2].then[0], steps[3].branch[1].steps[0] (a branch's default:
// .else), steps[4].split[0].steps[1], steps[5].split_test.variants[0].steps[0].
func walkPaths(list []Step, base string, fn func(s *Step, path string)) {
	for i := range list {
		s := &list[i]
		p := fmt.Sprintf("%s[%d]", base, i)
		fn(s, p)
		for k := range s.Branch {
			sub := ".steps"
			if s.Branch[k].When == nil {
				sub = ".else"
			}
			walkPaths(s.Branch[k].Steps, fmt.Sprintf("%s.branch[%d]%s", p, k, sub), fn)
		}
		for k := range s.Split {
			walkPaths(s.Split[k].Steps, fmt.Sprintf("%s.split[%d].steps", p, k), fn)
		}
		if t := s.SplitTest; t != nil {
			for k := range t.Variants {
				walkPaths(t.Variants[k].Steps, fmt.Sprintf("%s.split_test.variants[%d].steps", p, k), fn)
			}
		}
		walkPaths(s.Then, p+".then", fn)
		walkPaths(s.Else, p+".else", fn)
	}
}

// conditions visits every condition of the journey (entry, exit, goals, and the steps' if,
// wait_until and branch tests) with its path.
func (j *Journey) conditions(fn func(c *Condition, path string)) {
	if j.Entry != nil {
		fn(j.Entry, "entry")
	}
	if j.Exit != nil {
		fn(j.Exit, "exit")
	}
	for i := range j.Goals {
		fn(&j.Goals[i].When, fmt.Sprintf("goals[%d].when", i))
	}
	walkPaths(j.Steps, "steps", func(s *Step, p string) {
		if s.If != nil {
			fn(s.If, p+".if")
		}
		if s.WaitUntil != nil {
			fn(&s.WaitUntil.Condition, p+".wait_until.condition")
		}
		for k := range s.Branch {
			if s.Branch[k].When != nil {
				fn(s.Branch[k].When, fmt.Sprintf("%s.branch[%d].when", p, k))
			}
		}
	})
}

// tests visits every node of the condition tree (all, any, not, and the tests they hold),
// with paths under base.
func (c *Condition) tests(base string, fn func(c *Condition, path string)) {
	fn(c, base)
	for i := range c.All {
		c.All[i].tests(fmt.Sprintf("%s.all[%d]", base, i), fn)
	}
	for i := range c.Any {
		c.Any[i].tests(fmt.Sprintf("%s.any[%d]", base, i), fn)
	}
	if c.Not != nil {
		c.Not.tests(base+".not", fn)
	}
}

// maxStepID is the longest step id: ids become index keys and Temporal search-attribute values.
const maxStepID = 128

// fitID keeps an assigned id within maxStepID: an id made from a deep position
// (1-if.then.1-if.then.…) keeps its end, which names the step and its nearest paths, behind a
// short digest of the whole, so ids stay unique and stable however deep steps nest.
func fitID(id string) string {
	if len(id) <= maxStepID {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	prefix := hex.EncodeToString(sum[:4]) + "."
	tail := id[len(id)-(maxStepID-len(prefix)):]
	if i := strings.IndexByte(tail, '.'); i >= 0 && i+1 < len(tail) {
		tail = tail[i+1:]
	}
	return prefix + tail
}
