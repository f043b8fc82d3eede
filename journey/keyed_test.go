package journey_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/journey"
)

func TestAKeyedValueComparesWithThePropertyOfTheTrigger(t *testing.T) {
	t.Parallel()
	c, err := journey.DecodeCondition([]byte("{event: Order Completed, where: {cart_id: {trigger: cart_id}, currency: EUR}, since_entry: true}"))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"currency": "EUR"}, c.Event.Where)
	require.Equal(t, map[string]string{"cart_id": "cart_id"}, c.Event.Keys)
	require.True(t, c.UsesTrigger())
	require.Equal(t, "event Order Completed since entry where cart_id = trigger's cart_id", c.String())
	b, err := json.Marshal(c)
	require.NoError(t, err)
	var back journey.Condition
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, c.Event.Keys, back.Event.Keys, "a pinned journey keeps its keys")

	where, ok := c.Event.Resolved(map[string]any{"cart_id": "c-1"})
	require.True(t, ok)
	require.Equal(t, map[string]any{"currency": "EUR", "cart_id": "c-1"}, where)
	_, ok = c.Event.Resolved(map[string]any{"other": 1})
	require.False(t, ok, "a trigger without the property matches no event")

	// Every event test takes them: orders too.
	c, err = journey.DecodeCondition([]byte("{purchased: true, where: {cart_id: {trigger: cart_id}}}"))
	require.NoError(t, err)
	require.Equal(t, "cart_id", c.Event.Keys["cart_id"])
}

func TestKeyedValuesAreRefusedWhereNoTriggerExists(t *testing.T) {
	t.Parallel()
	// A segment has no trigger: refused with its path, as since_entry is.
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("{event: x, where: {cart_id: {trigger: cart_id}}}"), &n))
	_, err := journey.DecodeSegmentCondition(n.Content[0], "condition")
	require.Error(t, err)
	ve := err.(*journey.ValidationError)
	require.Equal(t, "condition.where.cart_id.trigger", ve.Problems[0].Path)
	require.Contains(t, ve.Problems[0].Message, "a segment has no trigger")

	built := journey.Condition{Event: &journey.EventTest{Name: "x", Keys: map[string]string{"cart_id": "cart_id"}}}
	probs := journey.CheckSegmentCondition(&built, "condition")
	require.NotEmpty(t, probs)
	require.Equal(t, "condition.where", probs[0].Path)

	for doc, path := range map[string]string{
		"{event: x, where: {cart_id: {trigger: ''}}}":           "condition.where.cart_id.trigger",
		"{event: x, where: {cart_id: {trigger: [a]}}}":          "condition.where.cart_id.trigger",
		"{event: x, where: {cart_id: {trigger: a, other: b}}}":  "condition.where.cart_id.other",
		"{event: x, where: {cart_id: {previous: cart_id}}}":     "condition.where.cart_id.previous",
		"{opened: welcome, where: {link: {trigger: [1, 2]}}}":   "condition.where.link.trigger",
		"{abandoned_cart: true, where: {cart_id: {nested: 1}}}": "condition.where.cart_id.nested",
	} {
		probs := conditionProblems(t, doc)
		require.Equal(t, path, probs[0].Path, doc)
	}

	// A trigger's own where compares with values as written.
	_, err = journey.Decode([]byte("id: j\ntrigger: {event: e, where: {cart_id: {trigger: cart_id}}}\nsteps: [end]"))
	require.Error(t, err)
	require.Equal(t, "trigger.where.cart_id.trigger", err.(*journey.ValidationError).Problems[0].Path)
}

func TestTheEventThatSettlesAKeyedTestIsTheOneForTheTriggersCart(t *testing.T) {
	t.Parallel()
	c, err := journey.DecodeCondition([]byte("{event: Order Completed, where: {cart_id: {trigger: cart_id}}, since_entry: true}"))
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	heard := func(cart string) journey.Heard {
		return journey.Heard{Name: "Order Completed", Properties: map[string]any{"cart_id": cart}, OccurredAt: now,
			Now: now, EnteredAt: now.Add(-time.Hour), Trigger: map[string]any{"cart_id": "c-1"}}
	}
	holds, decided := c.DecideFrom(heard("c-1"))
	require.True(t, holds && decided, "the checkout of the trigger's cart")
	require.True(t, c.Affects(heard("c-1")))
	require.False(t, c.Affects(heard("c-2")), "another cart's checkout cannot change it")
	holds, decided = c.DecideFrom(heard("c-2"))
	require.False(t, holds || decided)

	noKey := heard("c-1")
	noKey.Trigger = nil
	require.False(t, c.Affects(noKey), "a run whose trigger had no cart_id waits for no checkout")

	not := journey.Condition{Not: c}
	holds, decided = not.DecideFrom(heard("c-1"))
	require.True(t, decided)
	require.False(t, holds)
}

func TestAJourneyKeyNamesATriggerProperty(t *testing.T) {
	t.Parallel()
	j, err := journey.Decode([]byte("id: j\ntrigger: {cart_abandoned: true}\nkey: cart_id\nsteps: [end]"))
	require.NoError(t, err)
	require.Equal(t, "cart_id", j.Key)
	_, err = journey.Decode([]byte("id: j\ntrigger: {cart_abandoned: true}\nkey: ''\nsteps: [end]"))
	require.Error(t, err)
	require.Equal(t, "key", err.(*journey.ValidationError).Problems[0].Path)
}
