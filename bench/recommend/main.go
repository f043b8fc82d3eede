// Command recommend measures recommendations on a synthetic order history: a catalogue whose
// popularity follows a power law, and planted co-purchase pairs (an order with the first
// product of a pair has its partner too, with some probability). Each test customer's last
// order is held out as a basket to complete: its first product is put in the customer's cart
// (as Product Added), the rest is what the customer went on to buy; a recommendation of 3
// products hits when it names one of them. Cairn's recommendations (bought together, then
// viewed, then popular) are compared with the popularity fallback alone, in the same run, on
// the same data.
//
//	go run ./bench/recommend
//	go run ./bench/recommend -customers 20000 -products 2000 -pairs 200
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/pglocal"
)

func main() {
	customers := flag.Int("customers", 10000, "customers with orders")
	products := flag.Int("products", 1000, "products in the catalogue")
	pairs := flag.Int("pairs", 150, "planted co-purchase pairs")
	follow := flag.Float64("follow", 0.5, "probability that an order with a pair's first product has its partner too")
	tests := flag.Int("tests", 1000, "test customers (their last order held out)")
	k := flag.Int("k", 3, "products recommended")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*customers, *products, *pairs, *follow, *tests, *k, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "recommend:", err)
		os.Exit(1)
	}
}

// history is the synthetic data: each customer's orders, oldest first, as product indexes.
type history struct {
	orders  [][][]int
	partner map[int]int // a pair's first product → its partner
}

func generate(customers, products, pairs int, follow float64, rng *rand.Rand) history {
	// Popularity: product i is drawn with weight 1/(i+1)^0.9.
	cum := make([]float64, products)
	total := 0.0
	for i := range products {
		total += 1 / math.Pow(float64(i+1), 0.9)
		cum[i] = total
	}
	draw := func() int { return sort.SearchFloat64s(cum, rng.Float64()*total) }
	// Pairs among the catalogue's middle: neither bestsellers nor never bought.
	h := history{partner: map[int]int{}}
	perm := rng.Perm(products - 40)
	for i := 0; i < pairs && 2*i+1 < len(perm); i++ {
		h.partner[perm[2*i]+20] = perm[2*i+1] + 20
	}
	firsts := make([]int, 0, len(h.partner))
	for a := range h.partner {
		firsts = append(firsts, a)
	}
	sort.Ints(firsts)
	h.orders = make([][][]int, customers)
	for c := range customers {
		for range 2 + rng.IntN(4) { // 2 to 5 orders
			var order []int
			for range 1 + rng.IntN(3) { // of 1 to 3 products drawn by popularity…
				p := draw()
				if rng.Float64() < 0.3 {
					p = firsts[rng.IntN(len(firsts))] // …or a pair's first product
				}
				order = append(order, p)
				if b, ok := h.partner[p]; ok && rng.Float64() < follow {
					order = append(order, b) // bought with its partner
				}
			}
			h.orders[c] = append(h.orders[c], dedupe(order))
		}
	}
	return h
}

func dedupe(xs []int) []int {
	seen := map[int]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func sku(p int) string { return fmt.Sprintf("P%04d", p) }

func run(customers, products, pairs int, follow float64, tests, k int, seed uint64) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	h := generate(customers, products, pairs, follow, rng)
	// Test customers: the first tests customers whose last order has two products or more
	// (their orders are random like everyone's). The last order is not loaded: its first
	// product goes in the cart, the others are held out.
	held, carts := map[int][]int{}, map[int]int{}
	for c := 0; c < customers && len(held) < tests; c++ {
		if last := h.orders[c][len(h.orders[c])-1]; len(last) >= 2 {
			carts[c], held[c] = last[0], last[1:]
		}
	}

	pg, err := pglocal.StartTemp(ctx, map[string]string{"shared_buffers": "256MB"})
	if err != nil {
		return err
	}
	defer pg.Stop()
	pool, err := pgxpool.New(ctx, pg.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return err
	}
	began := time.Now()
	now := time.Now()
	var batch []crm.EventInput
	orders := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := crm.RecordEvents(ctx, pool, batch)
		batch = batch[:0]
		return err
	}
	for c, list := range h.orders {
		for i, order := range list {
			if _, test := held[c]; test && i == len(list)-1 {
				continue
			}
			var lines []any
			for _, p := range order {
				lines = append(lines, map[string]any{"sku": sku(p), "name": "Product " + sku(p), "price": 5 + p%50, "quantity": 1})
			}
			batch = append(batch, crm.EventInput{ExternalID: fmt.Sprint("c", c), Name: "Order Completed", Source: "bench",
				Properties: map[string]any{"order_id": fmt.Sprint(c, "-", i), "currency": "EUR", "products": lines},
				OccurredAt: now.Add(-time.Duration(len(list)-i) * 24 * time.Hour)})
			orders++
			if len(batch) == 500 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	for c, p := range carts {
		batch = append(batch, crm.EventInput{ExternalID: fmt.Sprint("c", c), Name: "Product Added", Source: "bench",
			Properties: map[string]any{"sku": sku(p), "name": "Product " + sku(p), "price": 5 + p%50}, OccurredAt: now.Add(-time.Hour)})
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Printf("loaded %d customers, %d orders, %d products, %d planted pairs (follow %.0f%%) in %s\n",
		customers, orders, products, len(h.partner), follow*100, time.Since(began).Round(time.Second))

	type result struct {
		hits, pairHits, pairTests, n int
		took                         time.Duration
	}
	evaluate := func(fn func(context.Context, crm.DB, int64, int, time.Time) ([]email.Product, error)) (result, error) {
		var r result
		ids := make([]int, 0, len(held))
		for c := range held {
			ids = append(ids, c)
		}
		sort.Ints(ids)
		for _, c := range ids {
			contact, err := crm.ContactByExternalID(ctx, pool, fmt.Sprint("c", c))
			if err != nil {
				return r, err
			}
			t := time.Now()
			recs, err := fn(ctx, pool, contact.ID, k, now)
			r.took += time.Since(t)
			if err != nil {
				return r, err
			}
			want := map[string]bool{}
			for _, p := range held[c] {
				want[sku(p)] = true
			}
			hit := false
			for _, p := range recs {
				hit = hit || want[p.SKU]
			}
			// Is the cart's product a pair's first, with its partner held out?
			b, ok := h.partner[carts[c]]
			planted := ok && want[sku(b)]
			r.n++
			if hit {
				r.hits++
			}
			if planted {
				r.pairTests++
				if hit {
					r.pairHits++
				}
			}
		}
		return r, nil
	}
	cairn, err := evaluate(crm.Recommend)
	if err != nil {
		return err
	}
	popular, err := evaluate(crm.Popular)
	if err != nil {
		return err
	}
	pct := func(a, b int) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
	}
	fmt.Printf("\nhit rate at %d over %d test customers (the last order's first product in the cart, the rest held out)\n\n", k, cairn.n)
	fmt.Printf("| recommender | hit rate at %d | where the cart holds a pair's first product and the partner was bought (%d) | per recommendation |\n", k, cairn.pairTests)
	fmt.Println("| --- | --- | --- | --- |")
	for _, r := range []struct {
		name string
		r    result
	}{{"Cairn: bought together, viewed, popular", cairn}, {"popularity fallback alone", popular}} {
		fmt.Printf("| %s | %s (%d) | %s (%d) | %s |\n", r.name, pct(r.r.hits, r.r.n), r.r.hits, pct(r.r.pairHits, r.r.pairTests), r.r.pairHits,
			(r.r.took / time.Duration(max(r.r.n, 1))).Round(10*time.Microsecond))
	}
	return nil
}
