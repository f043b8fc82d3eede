package journey_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

const flowDoc = `
id: flow
trigger: {event: A}
steps:
  - {id: first, add_tag: a}
  - id: ask
    wait_until: {condition: {tag: b}, timeout: 1d}
    then: [{id: yes, add_tag: y}]
    else: []
  - branch:
      - {when: {tag: c}, steps: [{id: c1, wait: 1d}, {id: c2, add_tag: c}]}
      - {else: [{id: d1, add_tag: d}]}
  - {id: last, send_email: {template: bye}}
`

func TestStepAfterFollowsPathsBackToTheTopLevel(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte(flowDoc))
	require.NoError(t, err)
	require.Equal(t, "ask", j.StepAfter("first"))
	require.Equal(t, "3-branch", j.StepAfter("yes"), "the end of a path goes on after the step that holds it")
	require.Equal(t, "c2", j.StepAfter("c1"))
	require.Equal(t, "last", j.StepAfter("c2"))
	require.Equal(t, "", j.StepAfter("last"), "the journey ends")
	require.Equal(t, "3-branch", j.FirstOr(j.Step("ask").Else, "ask"), "an empty path goes on")
	require.Equal(t, []string{"first", "ask", "yes", "3-branch", "c1", "c2", "d1", "last"}, j.StepIDs())
	require.True(t, j.Step("c1").IsWait())
	require.Nil(t, j.Step("nope"))
	require.Equal(t, []journey.TemplateRef{{Path: "steps[3].send_email.template", Template: "bye"}}, j.TemplateRefs())
}

// Steps nested as deep as the limit allows get ids within the 128 characters a step id may
// have, however deep: the end of the position, behind a digest of the whole.
func TestStepsNestedToTheDepthLimitGetValidIDs(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("id: deep\ntrigger: {event: A}\nsteps:\n")
	indent := "  "
	for level := 1; level < journey.MaxStepDepth; level++ {
		b.WriteString(indent + "- if: {tag: a}\n" + indent + "  then:\n")
		indent += "    "
	}
	b.WriteString(indent + "- {add_tag: bottom}\n")
	j, err := journey.Decode([]byte(b.String()))
	require.NoError(t, err)
	ids := j.StepIDs()
	require.Len(t, ids, journey.MaxStepDepth)
	seen := map[string]bool{}
	for _, id := range ids {
		require.LessOrEqual(t, len(id), 128, id)
		require.False(t, seen[id], "unique: %s", id)
		seen[id] = true
	}
	require.True(t, strings.HasSuffix(ids[len(ids)-1], ".then.1-add_tag"), ids[len(ids)-1])
}

func TestProblemsFoundAfterReadingCarryTheirLine(t *testing.T) {
	t.Parallel()
	_, err := journey.Decode([]byte("id: j\ntrigger: {event: A}\nsteps:\n  - {id: top, wait: 1d}\n  - {goto: nowhere}\n  - {wait: 3 dayz}\n"))
	var ve *journey.ValidationError
	require.ErrorAs(t, err, &ve)
	lines := map[string]int{}
	for _, p := range ve.Problems {
		lines[p.Path] = p.Line
	}
	require.Equal(t, map[string]int{"steps[1].goto.step": 5, "steps[2].wait": 6}, lines)
}

// Field and object tests, and templates, are found wherever a step can be, with the paths the
// decoder gives their problems: in a branch's default path (.else) and in a split test's
// variants too.
func TestReferencesAreFoundInEveryPathWithTheDecodersPaths(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte(`
id: refs
trigger: {event: A}
steps:
  - branch:
      - {when: {field: plan, equals: pro}, steps: [{add_tag: p}]}
      - {else: [{if: {field: seats, gt: 3}, then: [{add_tag: big}]}]}
  - split_test:
      variants:
        - {id: a, steps: [{if: {object: subscription, where: {status: active}}, then: [{send_email: {template: sub}}]}]}
        - {id: b, steps: [{send_email: {template: other}}]}
      metric: opened
`))
	require.NoError(t, err)
	var fields, objects []string
	for _, r := range j.FieldRefs() {
		fields = append(fields, r.Path)
	}
	for _, r := range j.ObjectRefs() {
		objects = append(objects, r.Path)
	}
	require.Equal(t, []string{"steps[0].branch[0].when", "steps[0].branch[1].else[0].if"}, fields)
	require.Equal(t, []string{"steps[1].split_test.variants[0].steps[0].if"}, objects)
	require.Equal(t, []journey.TemplateRef{
		{Path: "steps[1].split_test.variants[0].steps[0].then[0].send_email.template", Template: "sub"},
		{Path: "steps[1].split_test.variants[1].steps[0].send_email.template", Template: "other"},
	}, j.TemplateRefs())
}
