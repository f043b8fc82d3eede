package crm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
)

func TestRecommendationsComeFromWhatIsBoughtTogetherThenViewsThenPopularity(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	now := time.Now().UTC().Truncate(time.Second)
	order := func(who string, i int, skus ...string) {
		var products []any
		for _, sku := range skus {
			products = append(products, map[string]any{"sku": sku, "name": "The " + sku, "price": 10})
		}
		eventsOf(t, s, who)("Order Completed", map[string]any{"order_id": fmt.Sprint(who, i), "currency": "EUR", "products": products}, now.Add(-time.Duration(i+1)*time.Hour))
	}
	// Lamps are bought with shades; mugs with saucers; the bestseller with everything.
	for i := range 5 {
		order(fmt.Sprint("l", i), i, "lamp", "shade")
	}
	order("l5", 5, "lamp", "bestseller")
	for i := range 3 {
		order(fmt.Sprint("m", i), i, "mug", "saucer")
	}
	for i := range 30 {
		order(fmt.Sprint("b", i), i, "bestseller")
	}
	order("old", 1, "vase") // a popular product a year ago is not popular now
	_, err := s.Exec(ctx, `UPDATE orders SET occurred_at = now() - interval '1 year' WHERE order_id = 'old1'`)
	require.NoError(t, err)

	ann := newContact(t, ctx, s, "ann", nil)
	order("ann", 1, "mug")
	ann2 := eventsOf(t, s, "ann")
	ann2("Product Viewed", map[string]any{"sku": "desk", "name": "Desk", "price": 99, "url": "https://shop.example.com/desk"}, now.Add(-time.Hour))
	ann2("Product Viewed", map[string]any{"sku": "shade"}, now.Add(-2*time.Hour))
	ann2("Product Added", map[string]any{"sku": "lamp", "price": 20}, now.Add(-30*time.Minute))

	got, err := crm.Recommend(ctx, s, ann, 5, now)
	require.NoError(t, err)
	var picks []string
	for _, p := range got {
		picks = append(picks, p.SKU+":"+p.Reason)
	}
	require.Equal(t, []string{"shade:bought_together", "saucer:bought_together", "bestseller:bought_together", "desk:viewed"}, picks[:4],
		"never the lamp in the cart nor the mug bought; the shade, bought with lamps, before the bestseller")
	require.Len(t, got, 4, "nothing else was ordered in the last 90 days")
	require.Equal(t, "The shade", got[0].Name)
	require.Equal(t, "EUR", got[0].Currency)
	require.Equal(t, "https://shop.example.com/desk", got[3].URL)

	// A contact with no history gets the popular products.
	nobody := newContact(t, ctx, s, "new", nil)
	got, err = crm.Recommend(ctx, s, nobody, 2, now)
	require.NoError(t, err)
	require.Equal(t, "bestseller", got[0].SKU)
	require.Equal(t, crm.ReasonPopular, got[0].Reason)
	require.Equal(t, "lamp", got[1].SKU)
}
