package crm

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/email"
)

// Recommendations come from the contact's own history and everyone's orders, in SQL, in
// three tiers, best first:
//
//  1. bought together: products on the same orders as the contact's seeds — what is in its
//     cart, what it bought, what it viewed in the last 90 days — scored by item-to-item
//     cosine similarity, co(s, q) / √(orders(s) · orders(q)), summed over the seeds weighed by seedWeights, so a
//     bestseller that is on every order does not outrank the product really bought with the
//     seed;
//  2. viewed, not bought: products the contact viewed in the last 90 days, latest first;
//  3. popular: the products on the most orders in the last 90 days (the fallback, for a
//     contact with no history, or to fill up).
//
// A product the contact bought, or has in its cart, is never recommended. A product is its
// product_id, else its SKU, as in order and cart lines.

// Recommendation reasons.
const (
	ReasonBoughtTogether = "bought_together"
	ReasonViewed         = "viewed"
	ReasonPopular        = "popular"
)

const (
	// recommendWindow is how far back views and popularity look.
	recommendWindow = 90 * 24 * time.Hour
	// seedOrders bounds the orders read per seed (the latest), so that a seed on a million
	// orders costs what one on 2,000 does.
	seedOrders = 2000
	// candidates bounds the bought-together candidates scored (by raw co-occurrence first).
	candidates = 200
)

// seedsSQL are the contact's seeds ($1) with what to exclude: products it bought or has in its
// current cart ($2: the views' window start).
const seedsSQL = `
WITH cart AS (
    SELECT id FROM carts WHERE contact_id = $1 AND status IN ('open', 'abandoned')
    ORDER BY status = 'open' DESC, updated_at DESC, id DESC LIMIT 1
), bought AS (
    SELECT DISTINCT COALESCE(l.product_id, l.sku) AS p FROM orders o JOIN order_lines l ON l.order_ref = o.id
    WHERE o.contact_id = $1 AND COALESCE(l.product_id, l.sku) IS NOT NULL
), incart AS (
    SELECT l.product AS p FROM cart_lines l WHERE l.cart_ref = (SELECT id FROM cart)
), viewed AS (
    SELECT COALESCE(cairn_text(e.properties -> 'product_id'), cairn_text(e.properties -> 'sku')) AS p, max(e.occurred_at) AS at
    FROM events e WHERE e.contact_id = $1 AND e.name = 'Product Viewed' AND e.occurred_at >= $2
    GROUP BY 1
)
SELECT 'bought', p, NULL::timestamptz FROM bought
UNION ALL SELECT 'cart', p, NULL FROM incart
UNION ALL SELECT 'viewed', p, at FROM viewed WHERE p IS NOT NULL`

// boughtTogetherSQL scores the products on the seeds' ($1) orders, leaving out $2, best first,
// at most $3.
var boughtTogetherSQL = `
WITH seed_orders AS (
    SELECT s.p AS seed, s.w, o.order_ref
    FROM unnest($1::text[], $4::float8[]) s(p, w)
    CROSS JOIN LATERAL (SELECT l.order_ref FROM order_lines l WHERE COALESCE(l.product_id, l.sku) = s.p
                        ORDER BY l.order_ref DESC LIMIT ` + strconv.Itoa(seedOrders) + `) o
), seed_freq AS (
    SELECT seed, min(w) AS w, count(DISTINCT order_ref) AS f FROM seed_orders GROUP BY seed
), co AS (
    SELECT so.seed, COALESCE(l.product_id, l.sku) AS q, count(DISTINCT l.order_ref) AS n
    FROM seed_orders so JOIN order_lines l ON l.order_ref = so.order_ref
    WHERE COALESCE(l.product_id, l.sku) IS NOT NULL AND COALESCE(l.product_id, l.sku) <> ALL ($2::text[])
    GROUP BY so.seed, 2
), cand AS (
    SELECT q FROM co GROUP BY q ORDER BY sum(n) DESC, q LIMIT ` + strconv.Itoa(candidates) + `
), cand_freq AS MATERIALIZED (
    -- Once per candidate, not once per (seed, candidate).
    SELECT COALESCE(l.product_id, l.sku) AS q, count(DISTINCT l.order_ref) AS f
    FROM order_lines l WHERE COALESCE(l.product_id, l.sku) IN (SELECT q FROM cand)
    GROUP BY 1
)
SELECT co.q, sum(sf.w * co.n / sqrt(sf.f::float8 * cf.f::float8)) AS score
FROM co JOIN seed_freq sf ON sf.seed = co.seed JOIN cand_freq cf ON cf.q = co.q
GROUP BY co.q ORDER BY score DESC, co.q LIMIT $3`

// popularSQL lists the products on the most orders since $1, leaving out $2, at most $3.
const popularSQL = `
SELECT COALESCE(l.product_id, l.sku) AS p
FROM orders o JOIN order_lines l ON l.order_ref = o.id
WHERE o.occurred_at >= $1 AND COALESCE(l.product_id, l.sku) IS NOT NULL AND COALESCE(l.product_id, l.sku) <> ALL ($2::text[])
GROUP BY 1 ORDER BY count(DISTINCT o.id) DESC, 1 LIMIT $3`

// productDetailsSQL reads each product's ($1) latest name, price and currency from order and
// cart lines, and its link and image from cart lines and the contact's ($2) product views.
const productDetailsSQL = `
SELECT p.p, COALESCE(ol.product_id, cl.product_id, cairn_text(ev.properties -> 'product_id'), ''),
       COALESCE(ol.sku, cl.sku, cairn_text(ev.properties -> 'sku'), ''),
       COALESCE(ol.name, cl.name, cairn_text(ev.properties -> 'name'), ''),
       COALESCE(ol.price, cl.price, cairn_num(ev.properties -> 'price'), 0)::float8,
       COALESCE(NULLIF(ol.currency, ''), NULLIF(cl.currency, ''), cairn_text(ev.properties -> 'currency'), ''),
       COALESCE(cl.url, cairn_text(ev.properties -> 'url'), ''),
       COALESCE(cl.image_url, cairn_text(ev.properties -> 'image_url'), '')
FROM unnest($1::text[]) p(p)
LEFT JOIN LATERAL (SELECT l.product_id, l.sku, l.name, l.price, o.currency FROM order_lines l JOIN orders o ON o.id = l.order_ref
                   WHERE COALESCE(l.product_id, l.sku) = p.p ORDER BY l.order_ref DESC LIMIT 1) ol ON true
LEFT JOIN LATERAL (SELECT l.product_id, l.sku, l.name, l.price, k.currency, l.url, l.image_url FROM cart_lines l JOIN carts k ON k.id = l.cart_ref
                   WHERE l.product = p.p AND k.contact_id = $2 ORDER BY l.added_at DESC LIMIT 1) cl ON true
LEFT JOIN LATERAL (SELECT e.properties FROM events e
                   WHERE e.contact_id = $2 AND e.name = 'Product Viewed'
                     AND COALESCE(cairn_text(e.properties -> 'product_id'), cairn_text(e.properties -> 'sku')) = p.p
                   ORDER BY e.occurred_at DESC LIMIT 1) ev ON true`

// Recommend returns up to n products for the contact, best first, each with its reason.
func Recommend(ctx context.Context, db DB, contactID int64, n int, now time.Time) ([]email.Product, error) {
	return recommend(ctx, db, contactID, n, now, false)
}

// Popular is the third tier alone: the products on the most orders in the last 90 days that
// the contact has not bought and has not in its cart (what Recommend gives a contact without
// history). Benchmarks compare Recommend with it.
func Popular(ctx context.Context, db DB, contactID int64, n int, now time.Time) ([]email.Product, error) {
	return recommend(ctx, db, contactID, n, now, true)
}

func recommend(ctx context.Context, db DB, contactID int64, n int, now time.Time, popularOnly bool) ([]email.Product, error) {
	if n <= 0 {
		return nil, nil
	}
	if now.IsZero() {
		now = time.Now()
	}
	since := now.Add(-recommendWindow)
	rows, err := db.Query(ctx, seedsSQL, contactID, since)
	if err != nil {
		return nil, fmt.Errorf("read recommendation seeds: %w", err)
	}
	type seed struct {
		Kind, Product string
		At            *time.Time
	}
	seeds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[seed])
	if err != nil {
		return nil, fmt.Errorf("read recommendation seeds: %w", err)
	}
	from, weights, excluded := []string{}, []float64{}, []string{}
	var views []seed
	seen := map[string]int{}
	for _, s := range seeds {
		w := seedWeights[s.Kind]
		if i, ok := seen[s.Product]; ok {
			weights[i] = max(weights[i], w)
		} else {
			seen[s.Product] = len(from)
			from, weights = append(from, s.Product), append(weights, w)
		}
		if s.Kind == "viewed" {
			views = append(views, s)
		} else {
			excluded = append(excluded, s.Product)
		}
	}
	picked := map[string]string{} // product → reason
	var order []string
	take := func(p, reason string) {
		if len(order) < n && picked[p] == "" && !slices.Contains(excluded, p) {
			picked[p] = reason
			order = append(order, p)
		}
	}
	if popularOnly {
		from, views = nil, nil
	}
	if len(from) > 0 {
		rows, err := db.Query(ctx, boughtTogetherSQL, from, excluded, n, weights)
		if err != nil {
			return nil, fmt.Errorf("recommend bought together: %w", err)
		}
		type scored struct {
			Product string
			Score   float64
		}
		together, err := pgx.CollectRows(rows, pgx.RowToStructByPos[scored])
		if err != nil {
			return nil, fmt.Errorf("recommend bought together: %w", err)
		}
		for _, s := range together {
			take(s.Product, ReasonBoughtTogether)
		}
	}
	// Views, latest first.
	slices.SortStableFunc(views, func(a, b seed) int { return b.At.Compare(*a.At) })
	for _, s := range views {
		take(s.Product, ReasonViewed)
	}
	if len(order) < n {
		rows, err := db.Query(ctx, popularSQL, since, append(append([]string{}, excluded...), order...), n-len(order))
		if err != nil {
			return nil, fmt.Errorf("recommend popular: %w", err)
		}
		popular, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("recommend popular: %w", err)
		}
		for _, p := range popular {
			take(p, ReasonPopular)
		}
	}
	if len(order) == 0 {
		return []email.Product{}, nil
	}
	rows, err = db.Query(ctx, productDetailsSQL, order, contactID)
	if err != nil {
		return nil, fmt.Errorf("read recommended products: %w", err)
	}
	details := map[string]email.Product{}
	for rows.Next() {
		var p string
		var d email.Product
		if err := rows.Scan(&p, &d.ProductID, &d.SKU, &d.Name, &d.Price, &d.Currency, &d.URL, &d.ImageURL); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read recommended products: %w", err)
		}
		details[p] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read recommended products: %w", err)
	}
	out := make([]email.Product, 0, len(order))
	for _, p := range order {
		d := details[p]
		if d.ProductID == "" && d.SKU == "" {
			d.ProductID = p
		}
		d.Reason = picked[p]
		out = append(out, d)
	}
	return out, nil
}

// seedWeights weigh a seed's similar products by what the contact did with the seed: what is
// in its cart now says most about what it wants next.
var seedWeights = map[string]float64{"cart": 1, "viewed": 0.5, "bought": 0.5}
