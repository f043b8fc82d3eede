package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

func newContact(t *testing.T, ctx context.Context, s *pgxpool.Pool, ext string, traits map[string]any) int64 {
	t.Helper()
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: ext, Traits: traits, Name: "identify", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	c, err := crm.ContactByExternalID(ctx, s, ext)
	require.NoError(t, err)
	return c.ID
}

func count(t *testing.T, ctx context.Context, s *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.QueryRow(ctx, sql, args...).Scan(&n))
	return n
}

// Every action, run twice under one key (a retry after a crash), has one effect, records
// its events once and returns the first result.
func TestEveryActionRetriedWithTheSameKeyHasOneEffect(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	id := newContact(t, ctx, s, "u", map[string]any{"plan": "free"})
	_, err := crm.AddTag(ctx, s, crm.Action{Key: "seed", ContactID: id, At: time.Now()}, "trial")
	require.NoError(t, err)
	actions := []struct {
		name   string
		run    func(key string) (crm.ActionResult, error)
		effect string // a count query that must be 1 after both runs
	}{
		{"remove_tag", func(k string) (crm.ActionResult, error) {
			return crm.RemoveTag(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, "trial")
		},
			`SELECT count(*) FROM events WHERE name = 'tag_removed'`},
		{"update_fields", func(k string) (crm.ActionResult, error) {
			return crm.UpdateFields(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, map[string]any{"plan": "pro"})
		}, `SELECT count(*) FROM events WHERE name = 'field_changed'`},
		{"adjust_score", func(k string) (crm.ActionResult, error) {
			return crm.AdjustScore(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, "", 5, "test")
		},
			`SELECT count(*) FROM score_changes`},
		{"subscribe", func(k string) (crm.ActionResult, error) {
			return crm.SetSubscription(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, "news", true)
		},
			`SELECT count(*) FROM events WHERE name = 'list_subscribed'`},
		{"create_deal", func(k string) (crm.ActionResult, error) {
			return crm.CreateDeal(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, journey.Deal{Title: "Pro", Pipeline: "sales", Stage: "lead", Value: 900})
		}, `SELECT count(*) FROM deals`},
		{"move_deal", func(k string) (crm.ActionResult, error) {
			return crm.MoveDeal(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, "sales", "won")
		},
			`SELECT count(*) FROM deal_stage_changes WHERE to_stage = 'won'`},
		{"create_task", func(k string) (crm.ActionResult, error) {
			return crm.CreateTask(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, "Call", "ana", 48*time.Hour)
		}, `SELECT count(*) FROM tasks WHERE due_at > now() + interval '47 hours'`},
		{"add_note", func(k string) (crm.ActionResult, error) {
			return crm.AddNote(ctx, s, crm.Action{Key: k, ContactID: id, At: time.Now()}, "hi")
		},
			`SELECT count(*) FROM events WHERE name = 'note_added'`},
	}
	for _, a := range actions {
		first, err := a.run("key-" + a.name)
		require.NoError(t, err, a.name)
		again, err := a.run("key-" + a.name)
		require.NoError(t, err, a.name)
		require.True(t, again.Replayed, a.name)
		require.Equal(t, first.Detail, again.Detail, a.name)
		require.Equal(t, 1, count(t, ctx, s, a.effect), a.name)
	}
	c, err := crm.ContactByID(ctx, s, id)
	require.NoError(t, err)
	require.Equal(t, "pro", c.Traits["plan"])
	require.Empty(t, c.Tags)
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM contacts WHERE (scores ->> '')::numeric = 5`))
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM deals WHERE stage = 'won'`))
}

func TestScoreChangeRecordsOldAndNewForTriggers(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	id := newContact(t, ctx, s, "u", nil)
	_, err := crm.AdjustScore(ctx, s, crm.Action{Key: "a", ContactID: id, At: time.Now()}, "", 30, "opened")
	require.NoError(t, err)
	_, err = crm.AdjustScore(ctx, s, crm.Action{Key: "b", ContactID: id, At: time.Now()}, "", 25, "visited pricing")
	require.NoError(t, err)
	var old, now float64
	require.NoError(t, s.QueryRow(ctx, `SELECT (properties->>'old')::float8, (properties->>'new')::float8 FROM events
		WHERE name = 'score_changed' ORDER BY id DESC LIMIT 1`).Scan(&old, &now))
	require.Equal(t, 30.0, old)
	require.Equal(t, 55.0, now)
}

func TestMoveDealWithoutAnOpenDealSaysSoAndLeavesNoLedgerRow(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	id := newContact(t, ctx, s, "u", nil)
	_, err := crm.MoveDeal(ctx, s, crm.Action{Key: "k", ContactID: id, At: time.Now()}, "sales", "won")
	require.ErrorIs(t, err, crm.ErrNoDeal)
	require.Zero(t, count(t, ctx, s, `SELECT count(*) FROM action_ledger`))
}

func TestStartJourneyRequestNeedsAnExistingJourney(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	id := newContact(t, ctx, s, "u", nil)
	_, err := crm.RequestJourney(ctx, s, crm.Action{Key: "k", ContactID: id, At: time.Now()}, "nope")
	require.ErrorIs(t, err, crm.ErrNotFound)
}
