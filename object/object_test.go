package object_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/object"
)

const subscription = `
name: Subscription
schema:
  type: object
  properties:
    plan: {type: string}
    status: {enum: [active, past_due, cancelled]}
    renews: {type: string, format: date}
    seats: {type: integer, minimum: 1}
  required: [status]
sources:
  - {event: Subscription Updated, id: subscription_id}
`

func TestATypeIsAJSONSchemaAndItsSources(t *testing.T) {
	t.Parallel()
	ty, err := object.Decode("subscription", []byte(subscription))
	require.NoError(t, err)
	require.Equal(t, "Subscription", ty.Name)
	require.Equal(t, []object.Source{{Event: "Subscription Updated", ID: "subscription_id"}}, ty.Sources)
	s, err := object.Compile(ty.Schema)
	require.NoError(t, err)
	require.Equal(t, []string{"plan", "renews", "seats", "status"}, s.Fields())
	require.Empty(t, s.Validate(map[string]any{"status": "active", "renews": "2026-05-01", "seats": 3}, "fields"))
	probs := s.Validate(map[string]any{"status": "paused", "renews": "next week", "seats": 0.5}, "fields")
	var paths []string
	for _, p := range probs {
		paths = append(paths, p.Path)
	}
	require.Equal(t, []string{"fields.renews", "fields.seats", "fields.status"}, paths, "%v", probs)
	probs = s.Validate(map[string]any{"plan": "pro"}, `records["s1"]`)
	require.Len(t, probs, 1)
	require.Equal(t, `records["s1"]`, probs[0].Path)
	require.Contains(t, probs[0].Message, "status")
}

func TestADefinitionWithMistakesNamesEachPath(t *testing.T) {
	t.Parallel()
	for doc, path := range map[string]string{
		"name: x":                "schema",
		"schema: {type: array}":  "schema.type",
		"schema: {type: object}": "schema.properties",
		"schema: {type: object, properties: {a: {type: strin}}}":                            "schema.properties.a.type",
		"schema: {type: object, properties: {a: {minimum: soon}}}":                          "schema.properties.a.minimum",
		"schema: {type: object, properties: {'a b': {}}}":                                   "schema.properties.a b",
		"schema: {type: object, properties: {record: {}}}":                                  "schema.properties.record",
		"schema: {type: object, properties: {a: {$ref: 'https://evil/x'}}}":                 "schema",
		"schema: {type: object, properties: {a: {pattern: '('}}}":                           "schema.properties.a.pattern",
		"schema: {type: object, properties: {a: {}}}\nsources: [{id: x}]":                   "sources[0].event",
		"schema: {type: object, properties: {a: {}}}\nsources: [{event: e}]":                "sources[0].id",
		"schema: {type: object, properties: {a: {}}}\nsources: [{event: tag_added, id: x}]": "sources[0].event",
		"id: other\nschema: {type: object, properties: {a: {}}}":                            "id",
	} {
		_, err := object.Decode("subscription", []byte(doc))
		require.Error(t, err, doc)
		ve, ok := err.(*journey.ValidationError)
		require.True(t, ok, "%s: %T %v", doc, err, err)
		found := false
		for _, p := range ve.Problems {
			found = found || p.Path == path
		}
		require.True(t, found, "%s: want %s in %v", doc, path, ve.Problems)
	}
	_, err := object.Decode("x", []byte("schema: {type: object, properties: {a: {}}}\nextra: 1"))
	require.Error(t, err)
	require.NotEmpty(t, object.IDProblem("Sub scription"))
}
