package starter_test

import (
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/crm"
	"github.com/stretchr/testify/require"
	analytics "gopkg.in/segmentio/analytics-go.v3"
)

// callback collects what the client library reports.
type callback struct {
	mu       sync.Mutex
	ok, fail int
	errs     []error
}

func (c *callback) Success(analytics.Message) { c.mu.Lock(); c.ok++; c.mu.Unlock() }
func (c *callback) Failure(_ analytics.Message, err error) {
	c.mu.Lock()
	c.fail++
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// TestSegmentsOwnGoLibraryWorksUnmodified points Segment's analytics-go at the starter: it
// batches, authenticates with the write key and posts to /v1/batch.
func TestSegmentsOwnGoLibraryWorksUnmodified(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cb := &callback{}
	client, err := analytics.NewWithConfig(writeKey, analytics.Config{
		Endpoint: f.srv.URL, Interval: 50 * time.Millisecond, BatchSize: 10, Callback: cb,
	})
	require.NoError(t, err)
	require.NoError(t, client.Enqueue(analytics.Page{AnonymousId: "visitor-1", Name: "Pricing",
		Properties: analytics.NewProperties().SetURL("https://shop.example.com/pricing").SetPath("/pricing")}))
	require.NoError(t, client.Enqueue(analytics.Alias{PreviousId: "visitor-1", UserId: "ada"}))
	require.NoError(t, client.Enqueue(analytics.Identify{UserId: "ada", Traits: analytics.NewTraits().SetEmail("ada@example.com").SetFirstName("Ada")}))
	require.NoError(t, client.Enqueue(analytics.Track{UserId: "ada", Event: "Order Completed",
		Properties: analytics.NewProperties().SetRevenue(42).SetCurrency("EUR")}))
	require.NoError(t, client.Enqueue(analytics.Screen{UserId: "ada", Name: "Home"}))
	require.NoError(t, client.Enqueue(analytics.Group{UserId: "ada", GroupId: "acme", Traits: analytics.NewTraits().SetName("Acme")}))
	require.NoError(t, client.Close())

	require.Equal(t, 6, cb.ok, "failures: %v", cb.errs)
	require.Zero(t, cb.fail)
	c, err := crm.ContactByExternalID(f.ctx, f.store, "ada")
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", c.Email)
	rows, err := f.store.Query(f.ctx, `SELECT name FROM events WHERE contact_id = $1 ORDER BY id`, c.ID)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.Equal(t, []string{"page", "alias", "identify", "Order Completed", "screen", "group"}, names,
		"the anonymous visitor's page view now belongs to ada")
	var path, groupID string
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT properties->>'path' FROM events WHERE name = 'page'`).Scan(&path))
	require.NoError(t, f.store.QueryRow(f.ctx, `SELECT properties->>'groupId' FROM events WHERE name = 'group'`).Scan(&groupID))
	require.Equal(t, "/pricing", path)
	require.Equal(t, "acme", groupID)
}

func TestBatchWithOneBadMessageRecordsNone(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "POST", "/v1/batch", `{"batch": [
		{"type": "track", "userId": "ada", "event": "Signed Up", "messageId": "b1"},
		{"type": "track", "userId": "bob"}
	]}`, basic(writeKey))
	require.Equal(t, 400, r.Status)
	e := errorOf(t, r)
	require.Equal(t, "batch[1].event", e["path"])
	require.Zero(t, f.count(t, "events"))
	require.Zero(t, f.count(t, "contacts"))

	r = f.do(t, "POST", "/v1/batch", `{"batch": [{"type": "shout", "userId": "ada"}]}`, basic(writeKey))
	require.Equal(t, 400, r.Status)
	require.Equal(t, "batch[0].type", errorOf(t, r)["path"])
}
