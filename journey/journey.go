// Package journey is Cairn's journey language: the types a journey document decodes into,
// decoding from YAML or JSON, and validation that reports every problem with its path.
// It is pure: no I/O, no Temporal.
package journey

import (
	"fmt"
	"regexp"
	"strings"
)

// Journey is one automation: what starts it and the steps a contact walks through.
// It is also the pinned definition a running ContactJourney carries, so its JSON form is stable.
type Journey struct {
	ID      string  `json:"id"`
	Name    string  `json:"name,omitempty"`
	Trigger Trigger `json:"trigger"`
	Steps   []Step  `json:"steps"`
}

// Trigger says which contact event starts the journey for that contact.
type Trigger struct {
	// Event is the event name, e.g. a Segment track event ("Signed Up") or an internal
	// one ("tag_added").
	Event string `json:"event"`
}

// Step is one thing the journey does. Exactly one of the kind fields is set; Kind names it.
type Step struct {
	// ID names the step in Temporal UI, in the state query and in idempotency keys.
	// When a document leaves it out, Decode assigns "<position>-<kind>" (e.g. "2-wait").
	ID string `json:"id"`

	AddTag    string     `json:"add_tag,omitempty"`
	Wait      *Duration  `json:"wait,omitempty"`
	SendEmail *SendEmail `json:"send_email,omitempty"`
	End       bool       `json:"end,omitempty"`
}

// SendEmail sends a template to the contact.
type SendEmail struct {
	Template string `json:"template"`
}

// Step kinds, as written in documents.
const (
	KindAddTag    = "add_tag"
	KindWait      = "wait"
	KindSendEmail = "send_email"
	KindEnd       = "end"
)

// Kinds lists the step kinds in the order documentation shows them.
var Kinds = []string{KindAddTag, KindWait, KindSendEmail, KindEnd}

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
	}
	return ""
}

// Summary is a short human sentence for the step, used as Temporal UI summaries.
func (s Step) Summary() string {
	switch s.Kind() {
	case KindAddTag:
		return "add tag " + s.AddTag
	case KindWait:
		return "wait " + s.Wait.String()
	case KindSendEmail:
		return "send email " + s.SendEmail.Template
	case KindEnd:
		return "end"
	}
	return ""
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

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
func (j *Journey) Validate() error {
	var probs []Problem
	add := func(path, format string, args ...any) {
		probs = append(probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if j.ID == "" {
		add("id", "is required")
	} else if !idPattern.MatchString(j.ID) {
		add("id", "%q must be lower-case letters, digits, '-', '_' or '.', starting with a letter or digit (at most 63)", j.ID)
	}
	if j.Trigger.Event == "" {
		add("trigger.event", "is required")
	}
	if len(j.Steps) == 0 {
		add("steps", "a journey needs at least one step")
	}
	seen := map[string]int{}
	for i, s := range j.Steps {
		path := fmt.Sprintf("steps[%d]", i)
		if s.ID != "" {
			if !idPattern.MatchString(s.ID) {
				add(path+".id", "%q must be lower-case letters, digits, '-', '_' or '.'", s.ID)
			}
			if first, dup := seen[s.ID]; dup {
				add(path+".id", "%q is already the id of steps[%d]", s.ID, first)
			}
			seen[s.ID] = i
		}
		switch s.Kind() {
		case "":
			add(path, "has no step kind (one of %s)", strings.Join(Kinds, ", "))
		case KindWait:
			if s.Wait.D <= 0 {
				add(path+".wait", "must be longer than zero")
			}
		case KindSendEmail:
			if s.SendEmail.Template == "" {
				add(path+".send_email.template", "is required")
			}
		case KindEnd:
			if i != len(j.Steps)-1 {
				add(fmt.Sprintf("steps[%d]", i+1), "is unreachable: steps[%d] ends the journey", i)
			}
		}
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

// assignIDs gives every step without an id a readable one from its position and kind.
func (j *Journey) assignIDs() {
	taken := map[string]bool{}
	for _, s := range j.Steps {
		if s.ID != "" {
			taken[s.ID] = true
		}
	}
	for i := range j.Steps {
		if j.Steps[i].ID != "" || j.Steps[i].Kind() == "" {
			continue
		}
		id := fmt.Sprintf("%d-%s", i+1, j.Steps[i].Kind())
		for n := 2; taken[id]; n++ {
			id = fmt.Sprintf("%d-%s-%d", i+1, j.Steps[i].Kind(), n)
		}
		taken[id] = true
		j.Steps[i].ID = id
	}
}
