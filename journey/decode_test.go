package journey_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func problems(t *testing.T, doc string) []journey.Problem {
	t.Helper()
	_, err := journey.Decode([]byte(doc))
	require.Error(t, err)
	ve, ok := err.(*journey.ValidationError)
	require.True(t, ok, "a *ValidationError, got %T: %v", err, err)
	return ve.Problems
}

func TestDecodeReadsYAMLAndJSONAlike(t *testing.T) {
	t.Parallel()
	y, err := journey.Decode([]byte("id: welcome\ntrigger: {event: Signed Up}\nsteps:\n  - {add_tag: new}\n  - {wait: 1d12h}\n  - {id: hello, send_email: {template: welcome}}\n  - end\n"))
	require.NoError(t, err)
	j, err := journey.Decode([]byte(`{"id":"welcome","trigger":{"event":"Signed Up"},"steps":[{"add_tag":"new"},{"wait":"1d12h"},{"id":"hello","send_email":{"template":"welcome"}},{"end":true}]}`))
	require.NoError(t, err)
	require.Equal(t, y, j)
	require.Equal(t, []string{"1-add_tag", "2-wait", "hello", "4-end"}, []string{j.Steps[0].ID, j.Steps[1].ID, j.Steps[2].ID, j.Steps[3].ID})
	require.Equal(t, 36*time.Hour, j.Steps[1].Wait.D)
}

func TestDecodedJourneySurvivesAJSONRoundTrip(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte("id: w\ntrigger: {event: e}\nsteps: [{wait: 2w3d}, {add_tag: x}, end]"))
	require.NoError(t, err)
	b, err := json.Marshal(j)
	require.NoError(t, err)
	require.Contains(t, string(b), `"wait":"2w3d"`)
	var back journey.Journey
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, *j, back)
}

func TestEveryProblemIsReportedWithItsPath(t *testing.T) {
	t.Parallel()
	probs := problems(t, `
id: Bad Id
trigger: {event: x, when: now}
colour: blue
steps:
  - {add_tag: a}
  - {send_smss: {to: x}}
  - {wait: 2 dayz}
  - {add_tag: b, wait: 1d}
  - {send_email: {}}
  - 42
`)
	got := map[string]string{}
	for _, p := range probs {
		got[p.Path] = p.Message
		require.NotZero(t, p.Line, "line for %s", p.Path)
	}
	require.Contains(t, got["trigger.when"], "unknown key")
	require.Contains(t, got["colour"], "unknown key")
	require.Contains(t, got["steps[1]"], `unknown step kind "send_smss"`)
	require.Contains(t, got["steps[2].wait"], `"2 dayz" is not a duration`)
	require.Contains(t, got["steps[3]"], "add_tag and wait")
	require.Contains(t, got["steps[5]"], "a step must be a mapping")
	// Meaning is checked in the same pass, on what did read: the id, the empty template.
	require.Contains(t, got["id"], `"Bad Id" must be lower-case`)
	require.Contains(t, got["steps[4].send_email.template"], "is required")
	require.Len(t, probs, 8, "every problem in one pass, none twice: %v", probs)
}

func TestMeaningProblemsAreReportedTogether(t *testing.T) {
	t.Parallel()
	probs := problems(t, `
id: Bad Id
trigger: {event: ""}
steps:
  - {id: a, add_tag: x}
  - {id: a, end: true}
  - {send_email: {template: ""}}
`)
	paths := []string{}
	for _, p := range probs {
		paths = append(paths, p.Path)
	}
	require.ElementsMatch(t, []string{"id", "trigger.event", "steps[1].id", "steps[2]", "steps[2].send_email.template"}, paths)
}

func TestDecodeRejectsWhatIsNotAJourney(t *testing.T) {
	t.Parallel()
	require.Contains(t, problems(t, "")[0].Message, "empty")
	require.Contains(t, problems(t, "{not json")[0].Message, "not valid YAML or JSON")
	require.Contains(t, problems(t, "[1,2]")[0].Message, "must be a mapping")
	require.Contains(t, problems(t, "id: x\ntrigger: {event: e}\nsteps: []")[0].Message, "at least one step")
	require.Contains(t, problems(t, "id: x\ntrigger: {event: e}\nsteps: [{wait: 0s}]")[0].Message, "longer than zero")
}

func TestParseDurationAcceptsMarketerUnits(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "15m": 15 * time.Minute, "2h": 2 * time.Hour, "1d": 24 * time.Hour,
		"2w": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "500ms": 500 * time.Millisecond,
	} {
		d, err := journey.ParseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, d.D, in)
		require.Equal(t, in, d.String())
	}
	for _, bad := range []string{"", "2", "d", "2 days", "1.5d", "-1d", "99999999999w"} {
		_, err := journey.ParseDuration(bad)
		require.Error(t, err, bad)
	}
}
