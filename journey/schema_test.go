package journey_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/journey"
)

func schemaDefs(t *testing.T) map[string]any {
	t.Helper()
	var s map[string]any
	require.NoError(t, json.Unmarshal(journey.Schema, &s))
	return s["$defs"].(map[string]any)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestSchemaNamesExactlyTheStepTriggerAndConditionKeysTheDecoderKnows(t *testing.T) {
	t.Parallel()
	defs := schemaDefs(t)
	step := defs["step"].(map[string]any)["oneOf"].([]any)[1].(map[string]any)["properties"].(map[string]any)
	require.ElementsMatch(t, append([]string{"id", "then", "else"}, journey.Kinds...), keys(step))

	trigger := defs["trigger"].(map[string]any)["properties"].(map[string]any)
	require.ElementsMatch(t, append([]string{"where", "score", "offset", "anniversary"}, journey.TriggerKinds()...), keys(trigger))

	cond := defs["condition"].(map[string]any)["properties"].(map[string]any)
	want := append(append([]string{"within", "since_entry", "where", "at_least", "at_most", "exactly", "product"}, journey.ConditionKinds...), journey.FieldOps...)
	require.ElementsMatch(t, want, keys(cond))
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(journey.Schema))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("journey.json", doc))
	s, err := c.Compile("journey.json")
	require.NoError(t, err)
	return s
}

// asJSON turns a YAML document into the JSON value a schema validator reads.
func asJSON(t *testing.T, doc []byte) any {
	t.Helper()
	var v any
	require.NoError(t, yaml.Unmarshal(doc, &v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return out
}

func TestEveryExampleJourneyMatchesTheSchema(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	files, err := filepath.Glob("../examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		doc, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, s.Validate(asJSON(t, doc)), f)
	}
}

func TestSchemaRejectsWhatTheDecoderRejects(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	for _, doc := range []string{
		"id: j\ntrigger: {event: e}\nsteps: [{send_smss: {text: x}}]",
		"id: j\ntrigger: {event: e}\nsteps: [{wait: 2 dayz}]",
		"id: j\ntrigger: {tag_add: vip}\nsteps: [end]",
		"id: j\nsteps: [end]",
		"id: j\ntrigger: {event: e}\nsteps: [{if: {tags: vip}, then: [end]}]",
	} {
		require.Error(t, s.Validate(asJSON(t, []byte(doc))), doc)
		_, err := journey.Decode([]byte(doc))
		require.Error(t, err, doc)
	}
}
