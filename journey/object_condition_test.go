package journey_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func TestAnObjectTestReadsTheRecordsFieldsWhateverTheirNames(t *testing.T) {
	t.Parallel()
	c, err := journey.DecodeCondition([]byte("{object: subscription, where: {status: active}, renews: {within_next: 7d}, seats: {gte: 3}, list: {equals: gold}}"))
	require.NoError(t, err)
	require.Equal(t, "object", c.Kind())
	o := c.Object
	require.Equal(t, "subscription", o.Type)
	require.Equal(t, map[string]any{"status": "active"}, o.Where)
	require.Len(t, o.Fields, 3, "list is a field of the record here, not the list condition")
	require.Equal(t, journey.FieldTest{Name: "renews", Op: journey.OpWithinNext, Within: &journey.Duration{D: 7 * 24 * time.Hour}}, o.Fields[0])
	require.Equal(t, "object subscription where status = active, renews within next 1w, seats gte 3, list equals gold", c.String())
	require.Equal(t, []string{"object_changed", "object_created", "object_deleted"}, c.Events())

	c, err = journey.DecodeCondition([]byte("{object: vehicle, where: {vin: {trigger: vin}}, at_least: 2}"))
	require.NoError(t, err)
	require.True(t, c.UsesTrigger())
	require.Equal(t, 2, *c.Object.AtLeast)

	// A contact field's date test takes within_next too.
	c, err = journey.DecodeCondition([]byte("{field: renewal, within_next: 30d}"))
	require.NoError(t, err)
	require.Equal(t, "renewal within next 4w2d", c.String())

	for doc, path := range map[string]string{
		"{object: Sub Scription}":                          "condition.object",
		"{object: subscription, renews: soon}":             "condition.renews",
		"{object: subscription, renews: {within_next: x}}": "condition.renews.within_next",
		"{object: subscription, renews: {bigger: 1}}":      "condition.renews.bigger",
		"{object: subscription, at_least: -1}":             "condition.at_least",
		"{object: subscription, at_least: 1, exactly: 2}":  "condition",
		"{object: subscription, where: [a]}":               "condition.where",
	} {
		probs := conditionProblems(t, doc)
		require.Equal(t, path, probs[0].Path, doc)
	}
}

func TestRecordTriggersListenForTheirTypesEvents(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte("id: j\ntriggers: [{object_created: subscription}, {object_changed: subscription, where: {status: cancelled}}]\nsteps: [end]"))
	require.NoError(t, err)
	require.Equal(t, []string{"object_changed", "object_created"}, j.TriggerEvents())
	require.NotNil(t, j.TriggeredBy("object_changed", map[string]any{"object": "subscription", "record": "s1", "status": "cancelled"}))
	require.Nil(t, j.TriggeredBy("object_changed", map[string]any{"object": "subscription", "status": "active"}))
	require.Nil(t, j.TriggeredBy("object_changed", map[string]any{"object": "vehicle", "status": "cancelled"}))
	require.True(t, journey.Reserved("object_changed"), "only Cairn records them")
}
