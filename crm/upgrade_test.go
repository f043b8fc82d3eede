package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

// TestUpgradeFromTheSchemaBeforeOrdersKeepsEveryAnswer builds a database as Cairn left it at
// migration 13 (scores in their own table, orders and carts only as events, deals naming
// pipelines as text), applies the later migrations, and checks that the backfills carried it
// all over: the same conditions hold for the same contacts.
func TestUpgradeFromTheSchemaBeforeOrdersKeepsEveryAnswer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.MigrateTo(ctx, pool, 13))
	now := time.Now().UTC()
	var ann, bob int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO contacts (external_id, traits) VALUES ('ann', '{"address": {"country": "PT"}, "firstName": "Ann"}') RETURNING id`).Scan(&ann))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO contacts (external_id, traits) VALUES ('bob', '{}') RETURNING id`).Scan(&bob))
	_, err := pool.Exec(ctx, `INSERT INTO contact_scores (contact_id, name, value) VALUES ($1, '', 40), ($1, 'engagement', 7.5), ($2, 'engagement', 3)`, ann, bob)
	require.NoError(t, err)
	order := `{"order_id": "o-1", "total": 30, "currency": "EUR", "products": [{"sku": "S1", "price": 30, "quantity": 1}]}`
	_, err = pool.Exec(ctx, `INSERT INTO events (contact_id, name, properties, source, occurred_at) VALUES
		($1, 'Order Completed', $3, 'segment', $4),
		($1, 'Order Completed', $3, 'segment', $4),
		($2, 'cart_abandoned', '{"value": 12}', 'cairn', $4)`, ann, bob, order, now.Add(-time.Hour))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO deals (contact_id, title, pipeline, stage, created_at) VALUES
		($1, 'a', 'sales', 'lead', $3), ($2, 'b', 'sales', 'won', $3::timestamptz + interval '1 day')`, ann, bob, now.Add(-48*time.Hour))
	require.NoError(t, err)

	_, err = pool.Exec(ctx, `INSERT INTO field_definitions (name, type) VALUES ('plan', 'text'), ('birthday', 'date')`)
	require.NoError(t, err)

	require.NoError(t, crm.Migrate(ctx, pool))
	s := pool
	var columns int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(text_column) FROM field_definitions`).Scan(&columns))
	require.Equal(t, 1, columns, "the text field defined before field columns has one now; the date field needs none")

	scores, err := crm.Scores(ctx, s, ann)
	require.NoError(t, err)
	require.Len(t, scores, 2)
	require.Equal(t, 40.0, scores[0].Value)
	require.Equal(t, 7.5, scores[1].Value)
	c, err := crm.ContactByID(ctx, s, ann)
	require.NoError(t, err)
	require.Equal(t, "PT", c.Country)
	require.Equal(t, "Ann", c.FirstName)
	p, err := crm.PipelineByID(ctx, s, "sales")
	require.NoError(t, err)
	require.Len(t, p.Stages, 2)
	require.Equal(t, "lead", p.Stages[0].ID, "stages in the order deals first reached them")

	env := crm.Env{Now: now}
	for doc, want := range map[string][]int64{
		"{score: {gte: 40}}":                    {ann},
		"{score: {name: engagement, lt: 5}}":    {bob},
		"{purchased: S1, exactly: 1}":           {ann}, // the order reported twice is one
		"{total_spent: {gte: 30, lt: 31}}":      {ann},
		"{abandoned_cart: true, within: 1d}":    {bob},
		"{field: country, equals: pt}":          {ann},
		"{deal: {pipeline: sales, stage: won}}": {bob},
	} {
		cond, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err, doc)
		var got []int64
		for _, id := range []int64{ann, bob} {
			ok, err := crm.Matches(ctx, s, id, *cond, env)
			require.NoError(t, err, doc)
			if ok {
				got = append(got, id)
			}
		}
		require.Equal(t, want, got, doc)
		n, err := crm.CountMatching(ctx, s, *cond, env)
		require.NoError(t, err, doc)
		require.EqualValues(t, len(want), n, doc)
	}
}
