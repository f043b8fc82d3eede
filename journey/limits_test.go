package journey_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

// nested wraps inner in n levels of open … close.
func nested(open, inner, close string, n int) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// items is n copies of item (with %d replaced by the index), comma-separated.
func items(item string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strings.ReplaceAll(item, "%d", fmt.Sprint(i))
	}
	return strings.Join(parts, ", ")
}

// journeyWith is a valid journey with extra top-level keys and the given steps.
func journeyWith(extra, steps string) string {
	return "id: j\ntrigger: {event: e}\n" + extra + "steps: " + steps + "\n"
}

// onlyProblem decodes doc and returns its one problem.
func onlyProblem(t *testing.T, doc string) journey.Problem {
	t.Helper()
	probs := problems(t, doc)
	require.Len(t, probs, 1, "%v", probs)
	return probs[0]
}

func TestEveryLimitRefusesTheDocumentAtThePathWhereItIsPassed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, path, message string
	}{
		{"document bytes", journeyWith("name: "+strings.Repeat("x", journey.MaxDocumentBytes)+"\n", "[end]"),
			"", "bytes: at most 262144 (256 KiB) are allowed"},
		{"condition depth", journeyWith("entry: "+nested("{not: ", "{tag: a}", "}", journey.MaxConditionDepth)+"\n", "[end]"),
			"entry" + strings.Repeat(".not", journey.MaxConditionDepth), "conditions nest deeper than 32 levels here"},
		{"conditions in an any", journeyWith("entry: {any: ["+items("{tag: t%d}", journey.MaxListItems+1)+"]}\n", "[end]"),
			"entry.any", "has 1001 conditions: at most 1000 are allowed"},
		{"conditions in an all", journeyWith("", "[{if: {all: ["+items("{tag: t%d}", journey.MaxListItems+1)+"]}, then: [end]}]"),
			"steps[0].if.all", "has 1001 conditions: at most 1000 are allowed"},
		{"conditions in a document", journeyWith("entry: {any: ["+items("{all: [{tag: a}, {tag: b}, {tag: c}, {tag: d}]}", 1000)+"]}\n", "[end]"),
			"entry.any[999].all[3]", "is condition number 5001 of the document: at most 5000 are allowed"},
		{"conditions across a journey", journeyWith("exit: {any: ["+items("{all: [{tag: a}, {tag: b}, {tag: c}, {tag: d}]}", 999)+"]}\n",
			"[{if: {all: [{tag: a}, {tag: b}, {tag: c}, {tag: d}, {tag: e}, {tag: f}]}, then: [end]}]"),
			"steps[0].if.all[3]", "is condition number 5001 of the document"},
		{"properties in a where", journeyWith("entry: {event: x, where: {"+items("p%d: 1", journey.MaxListItems+1)+"}}\n", "[end]"),
			"entry.where", "has 1001 properties: at most 1000 are allowed"},
		{"steps in a journey", journeyWith("", "["+items("{add_tag: t%d}", journey.MaxSteps+1)+"]"),
			"steps[500]", "is step number 501 of the journey: at most 500 are allowed"},
		{"nested steps in a journey", journeyWith("", "["+items("{if: {tag: a}, then: [{add_tag: x}, {add_tag: y}]}", 167)+"]"),
			"steps[166].then[1]", "is step number 501 of the journey"},
		{"step depth", journeyWith("", nested("[{if: {tag: a}, then: ", "[end]", "}]", journey.MaxStepDepth)),
			"steps" + strings.Repeat("[0].then", journey.MaxStepDepth), "steps nest deeper than 16 levels here"},
		{"paths of a branch", journeyWith("", "[{branch: ["+items("{when: {tag: t%d}, steps: [end]}", journey.MaxListItems+1)+"]}]"),
			"steps[0].branch", "has 1001 paths: at most 1000 are allowed"},
		{"triggers", "id: j\ntriggers: [" + items("{event: e%d}", journey.MaxListItems+1) + "]\nsteps: [end]\n",
			"triggers", "has 1001 triggers: at most 1000 are allowed"},
		{"goals", journeyWith("goals: ["+items("{id: g%d, when: {tag: a}, then: s}", journey.MaxListItems+1)+"]\n", "[{id: s, add_tag: x}]"),
			"goals", "has 1001 goals: at most 1000 are allowed"},
		{"fields of update_fields", journeyWith("", "[{update_fields: {"+items("f%d: 1", journey.MaxListItems+1)+"}}]"),
			"steps[0].update_fields", "has 1001 fields: at most 1000 are allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := onlyProblem(t, tc.doc)
			require.Equal(t, tc.path, p.Path)
			require.Contains(t, p.Message, tc.message)
		})
	}
}

func TestDocumentsAtEveryLimitAreAccepted(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"condition depth":   journeyWith("entry: "+nested("{not: ", "{tag: a}", "}", journey.MaxConditionDepth-1)+"\n", "[end]"),
		"conditions in any": journeyWith("entry: {any: ["+items("{tag: t%d}", journey.MaxListItems)+"]}\n", "[end]"),
		"conditions":        journeyWith("entry: {any: ["+items("{all: [{tag: a}, {tag: b}, {tag: c}, {tag: d}]}", 999)+", {all: [{tag: a}, {tag: b}, {tag: c}]}]}\n", "[end]"),
		"steps":             journeyWith("", "["+items("{add_tag: t%d}", journey.MaxSteps)+"]"),
		"step depth":        journeyWith("", nested("[{id: s%d, if: {tag: a}, then: ", "[end]", "}]", journey.MaxStepDepth-1)),
	} {
		// Ids given, so automatically assigned ones do not outgrow their own limit.
		for i := 0; strings.Contains(doc, "s%d"); i++ {
			doc = strings.Replace(doc, "s%d", fmt.Sprintf("s%d", i), 1)
		}
		_, err := journey.Decode([]byte(doc))
		require.NoError(t, err, name)
	}
}

// TestDeepDocumentsAreRefusedWithoutReadingPastTheLimit proves the check linear without
// timing it: what lies past a limit is never read, so a mistake planted there is not reported,
// however deep or long the rest of the document is.
func TestDeepDocumentsAreRefusedWithoutReadingPastTheLimit(t *testing.T) {
	t.Parallel()
	bad := "{nope: 1}" // would be its own problem, were it read
	p := onlyProblem(t, journeyWith("entry: "+nested("{not: ", bad, "}", 5_000)+"\n", "[end]"))
	require.Equal(t, "entry"+strings.Repeat(".not", journey.MaxConditionDepth), p.Path)

	p = onlyProblem(t, journeyWith("", nested("[{if: {tag: a}, then: ", "[{send_smss: x}]", "}]", 3_000)))
	require.Contains(t, p.Message, "steps nest deeper than 16 levels")

	p = onlyProblem(t, journeyWith("", "["+items("{add_tag: t%d}", 600)+", {send_smss: x}]"))
	require.Equal(t, "steps[500]", p.Path)

	p = onlyProblem(t, journeyWith("entry: {any: ["+items("{all: [{tag: a}, {tag: b}, {tag: c}, {tag: d}]}", 1000)+", "+bad+"]}\n", "[end]"))
	require.Contains(t, p.Message, "has 1001 conditions")

	c, err := journey.DecodeCondition([]byte(nested("{any: [", bad, "]}", 4_000)))
	require.Nil(t, c)
	require.Len(t, err.(*journey.ValidationError).Problems, 1)
}

func TestAnEightyThousandStepJourneyIsRefusedForItsSize(t *testing.T) {
	t.Parallel()
	p := onlyProblem(t, journeyWith("", "["+items("{add_tag: t%d}", 80_000)+"]"))
	require.Contains(t, p.Message, "at most 262144 (256 KiB) are allowed")
}

func TestProblemsBeyondAHundredAreCounted(t *testing.T) {
	t.Parallel()
	probs := problems(t, journeyWith(strings.ReplaceAll(items("x%d: 1", 250), ", ", "\n")+"\n", "[end]"))
	require.Len(t, probs, journey.MaxProblems+1)
	require.Equal(t, "and 150 more problems", probs[journey.MaxProblems].Message)
}

func TestSegmentConditionsRefuseSinceEntry(t *testing.T) {
	t.Parallel()
	for doc, path := range map[string]string{
		"{event: x, since_entry: true}":                                            "condition.since_entry",
		"{all: [{tag: a}, {not: {opened: welcome, since_entry: true}}]}":           "condition.all[1].not.since_entry",
		"{any: [{clicked: true, since_entry: true}, {tag: a}]}":                    "condition.any[0].since_entry",
		"{purchased: SKU-1, since_entry: true, at_least: 2}":                       "condition.since_entry",
		"{any: [{visited: /pricing, since_entry: true}, {tag: a}]}":                "condition.any[0].since_entry",
		"{all: [{tag: a}, {abandoned_cart: true, since_entry: true}]}":             "condition.all[1].since_entry",
		"{any: [{tag: a}, {event: x, within: 1d, since_entry: true}]}":             "condition.any[1].since_entry",
		"{all: [{tag: a}, {tag: b}, {event: Order Completed, since_entry: true}]}": "condition.all[2].since_entry",
	} {
		n, err := journey.Parse([]byte(doc))
		require.NoError(t, err)
		_, err = journey.DecodeSegmentCondition(n, "condition")
		require.Error(t, err, doc)
		probs := err.(*journey.ValidationError).Problems
		require.Len(t, probs, 1, doc)
		require.Equal(t, path, probs[0].Path, doc)
		require.Contains(t, probs[0].Message, "only has a meaning in a journey")

		// A journey's condition may use it, and so may a condition decoded for one.
		_, err = journey.DecodeCondition([]byte(doc))
		require.NoError(t, err, doc)
		c, _ := journey.DecodeCondition([]byte(doc))
		require.Equal(t, []journey.Problem{{Path: path, Message: probs[0].Message}}, journey.CheckSegmentCondition(c, "condition"), doc)
	}
	// The window forms a segment does have are accepted.
	n, err := journey.Parse([]byte("{all: [{event: x, within: 30d}, {opened: welcome, between: [2026-01-01, 2026-02-01]}, {goal_met: {journey: j, goal: g}}]}"))
	require.NoError(t, err)
	_, err = journey.DecodeSegmentCondition(n, "condition")
	require.NoError(t, err)
}

func TestConditionsBuiltInCodeAreCheckedAgainstTheLimits(t *testing.T) {
	t.Parallel()
	c := journey.Condition{Tag: "a"}
	for i := 0; i < 100; i++ {
		c = journey.Condition{Not: &c}
	}
	probs := journey.CheckSegmentCondition(&c, "condition")
	require.Len(t, probs, 1)
	require.Equal(t, "condition"+strings.Repeat(".not", journey.MaxConditionDepth), probs[0].Path)

	wide := journey.Condition{Any: make([]journey.Condition, 30_000)}
	for i := range wide.Any {
		wide.Any[i].Tag = fmt.Sprint("t", i)
	}
	probs = journey.CheckSegmentCondition(&wide, "condition")
	require.Equal(t, []journey.Problem{{Path: "condition.any", Message: "has 30000 conditions: at most 1000 are allowed"}}, probs)

	j := &journey.Journey{ID: "j", Triggers: []journey.Trigger{{Kind: "event", Event: "e"}}, Reentry: journey.Reentry{Mode: journey.ReentryAlways}}
	for i := 0; i < 600; i++ {
		j.Steps = append(j.Steps, journey.Step{ID: fmt.Sprint("s", i), AddTag: "x"})
	}
	err := j.Validate()
	require.Error(t, err)
	require.Equal(t, "steps[500]", err.(*journey.ValidationError).Problems[0].Path)
}
