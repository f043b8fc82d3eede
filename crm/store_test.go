package crm_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func setup(t *testing.T) (context.Context, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	return ctx, pool
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	require.NoError(t, crm.Migrate(ctx, s))
	var n int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n))
	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	require.Equal(t, len(files), n)
}

func TestRecordEventWithSeenDedupeKeyChangesNothing(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	in := crm.EventInput{ExternalID: "u1", Traits: map[string]any{"email": "a@example.com"}, Name: "Signed Up",
		Source: "segment", DedupeKey: "segment:m1", OccurredAt: time.Now()}
	id, inserted, err := crm.RecordEvent(ctx, s, in)
	require.NoError(t, err)
	require.True(t, inserted)
	require.NotZero(t, id)

	in.Traits = map[string]any{"email": "changed@example.com"}
	_, inserted, err = crm.RecordEvent(ctx, s, in)
	require.NoError(t, err)
	require.False(t, inserted)

	c, err := crm.ContactByExternalID(ctx, s, "u1")
	require.NoError(t, err)
	require.Equal(t, "a@example.com", c.Email, "a replayed delivery must not touch the contact")
	var n int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, 1, n)
}

func TestConcurrentDuplicateDeliveriesRecordOneEvent(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	inserted := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "u1", Name: "x", Source: "segment", DedupeKey: "segment:same", OccurredAt: time.Now()})
			require.NoError(t, err)
			if ok {
				mu.Lock()
				inserted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, inserted)
}

func TestAddTagRetriedWithSameKeyTagsOnceAndRecordsOneEvent(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	id, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "u1", Name: "x", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	c, err := crm.ContactByExternalID(ctx, s, "u1")
	require.NoError(t, err)
	_ = id

	first, err := crm.AddTag(ctx, s, crm.Action{Key: "wf/run/1-add_tag/1", ContactID: c.ID, At: time.Now()}, "vip")
	require.NoError(t, err)
	require.False(t, first.Replayed)
	again, err := crm.AddTag(ctx, s, crm.Action{Key: "wf/run/1-add_tag/1", ContactID: c.ID, At: time.Now()}, "vip")
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.Detail["added"], again.Detail["added"])

	c, err = crm.ContactByID(ctx, s, c.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"vip"}, c.Tags)
	var events, changes int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM events WHERE name = 'tag_added'`).Scan(&events))
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM tag_changes`).Scan(&changes))
	require.Equal(t, 1, events)
	require.Equal(t, 1, changes)
}

func TestAddTagForUnknownContactIsNotFound(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, err := crm.AddTag(ctx, s, crm.Action{Key: "k", ContactID: 999, At: time.Now()}, "vip")
	require.ErrorIs(t, err, crm.ErrNotFound)
}

func TestApplyJourneyVersionsOnlyOnChange(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	j, err := journey.Decode([]byte("id: welcome\ntrigger: {event: Signed Up}\nsteps: [{add_tag: new}]"))
	require.NoError(t, err)
	v, created, err := crm.ApplyJourney(ctx, s, j, "doc")
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, 1, v.Version)

	v, created, err = crm.ApplyJourney(ctx, s, j, "doc")
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, 1, v.Version)

	j.Steps[0].AddTag = "newer"
	v, created, err = crm.ApplyJourney(ctx, s, j, "doc")
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, 2, v.Version)

	old, err := crm.JourneyByID(ctx, s, "welcome", 1)
	require.NoError(t, err)
	require.Equal(t, "new", old.Definition.Steps[0].AddTag, "versions are immutable")

	matched, err := crm.TriggeredBy(ctx, s, "Signed Up")
	require.NoError(t, err)
	require.Len(t, matched, 1)
	require.Equal(t, 2, matched[0].Version)
}
