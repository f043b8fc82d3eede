package journey_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func TestEventPeriodsAreDatesOrTimesWithTheEndExcluded(t *testing.T) {
	t.Parallel()
	c, err := journey.DecodeCondition([]byte("{opened: welcome, between: [2026-01-01, 2026-02-01]}"))
	require.NoError(t, err)
	require.Equal(t, &journey.Period{From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}, c.Event.Between)
	require.Equal(t, "event email_opened between 2026-01-01 to 2026-02-01 (end excluded)", c.String())

	c, err = journey.DecodeCondition([]byte(`{"purchased": "SKU-1", "between": ["2026-01-01T09:00:00+01:00", "2026-01-02"]}`))
	require.NoError(t, err)
	require.Equal(t, journey.FromOrders, c.Event.From)
	require.True(t, c.Event.Between.From.Equal(time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)))
	b, err := json.Marshal(c)
	require.NoError(t, err)
	var back journey.Condition
	require.NoError(t, json.Unmarshal(b, &back))
	require.True(t, back.Event.Between.From.Equal(c.Event.Between.From))
	require.Equal(t, journey.FromOrders, back.Event.From, "a stored journey keeps reading orders")

	for doc, path := range map[string]string{
		"{event: x, between: [2026-02-01, 2026-01-01]}":          "condition.between",
		"{event: x, between: [2026-01-01, 2026-01-01]}":          "condition.between",
		"{event: x, between: [2026-01-01]}":                      "condition.between",
		"{event: x, between: [2026-01-01, soon]}":                "condition.between[1]",
		`{event: x, between: ["", 2026-01-01]}`:                  "condition.between[0]",
		"{event: x, between: 2026-01-01}":                        "condition.between",
		"{viewed_not_purchased: yes}":                            "condition.viewed_not_purchased",
		"{deal: {pipeline: sales, stage: a, stage_at_least: b}}": "condition.deal.stage_at_least",
		"{viewed_not_purchased: true, within: soon}":             "condition.within",
		"{viewed_not_purchased: true, product: ''}":              "condition.product",
		"{viewed_not_purchased: true, at_least: 2}":              "condition.at_least",
	} {
		probs := conditionProblems(t, doc)
		require.Equal(t, path, probs[0].Path, doc)
	}
}

func TestViewedNotPurchasedDecodesAndNamesItsEvents(t *testing.T) {
	t.Parallel()
	c, err := journey.DecodeCondition([]byte("{viewed_not_purchased: true, within: 2d, product: SKU-1}"))
	require.NoError(t, err)
	require.Equal(t, "viewed_not_purchased", c.Kind())
	require.Equal(t, 48*time.Hour, c.ViewedNotPurchased.Within.D)
	require.Equal(t, "SKU-1", c.ViewedNotPurchased.Product)
	require.Equal(t, []string{"Order Completed", "Product Viewed"}, c.Events())
	require.Equal(t, "viewed product SKU-1 within 2d and did not buy it", c.String())
}

func conditionProblems(t *testing.T, doc string) []journey.Problem {
	t.Helper()
	_, err := journey.Decode([]byte("id: j\ntrigger: {event: e}\nentry: " + doc + "\nsteps: [end]"))
	require.Error(t, err, doc)
	ve, ok := err.(*journey.ValidationError)
	require.True(t, ok, "a *ValidationError, got %T: %v", err, err)
	for i := range ve.Problems {
		ve.Problems[i].Path = strings.Replace(ve.Problems[i].Path, "entry", "condition", 1)
	}
	return ve.Problems
}
