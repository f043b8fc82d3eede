package contract

import (
	"time"

	"github.com/cairnhq/cairn/journey"
)

// SignalMigrate asks a run to continue on another version of its journey
// (POST /v1/journeys/{id}/migrate).
const SignalMigrate = "migrate"

// Migration is SignalMigrate's payload: the version to move to, with its definition (a run
// reads nothing from the CRM to decide), and where each step's contacts continue.
type Migration struct {
	// ID is the CRM's record of the migration; a run moved by it says so in its path.
	ID      int64           `json:"id"`
	From    int             `json:"from"`
	To      int             `json:"to"`
	Journey journey.Journey `json:"journey"`
	// Map sends a contact at one of its keys (a step of From, nested or not) to the top-level
	// step of To it names; Default, when set, takes the contacts at the steps Map leaves out.
	Map     map[string]string `json:"map"`
	Default string            `json:"default,omitempty"`
}

// Target is the step of To a contact at step continues at, or "" when it stays on From.
func (m Migration) Target(step string) string {
	if t, ok := m.Map[step]; ok {
		return t
	}
	return m.Default
}

// Next is what comes next for a run: the step it goes on to, and when, when that is known (a
// wait's deadline, a window's opening, a wait_until's timeout).
type Next struct {
	// Step is the step it goes on to; "" means the journey ends there.
	Step string     `json:"step"`
	At   *time.Time `json:"at,omitempty"`
	// On says what moves it on: "timer", "date", "window", "timeout" (a wait_until's),
	// "condition" (a wait_until without a timeout), "goal" (a goal's wait, whose end the goal's
	// step follows), or "step" (the step now running finishing).
	On string `json:"on"`
	// IfMet, at a wait_until, is where the contact goes if the condition holds first.
	IfMet string `json:"if_met,omitempty"`
}
