package crm_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
)

// track records one event for the contact.
func track(t *testing.T, ctx context.Context, s *pgxpool.Pool, who, name string) int64 {
	t.Helper()
	id, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: who, Name: name, Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	return id
}

func TestAContactIsLeasedByOneDispatcherAtATimeWithItsEventsInOrder(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	for i := range 30 {
		for c := range 10 {
			track(t, ctx, s, fmt.Sprintf("c%d", c), fmt.Sprintf("e%d", i))
		}
	}
	// Five dispatchers claim at once: every contact goes to exactly one of them.
	var mu sync.Mutex
	owners := map[int64]string{}
	var wg sync.WaitGroup
	for o := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("d%d", o)
			evs, err := crm.ClaimContacts(ctx, s, owner, 10, 100, time.Minute)
			require.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			last := map[int64]int64{}
			for _, ev := range evs {
				if prev, ok := owners[ev.ContactID]; ok && prev != owner {
					t.Errorf("contact %d claimed by %s and %s", ev.ContactID, prev, owner)
				}
				owners[ev.ContactID] = owner
				require.Greater(t, ev.ID, last[ev.ContactID], "a contact's events come oldest first")
				last[ev.ContactID] = ev.ID
			}
		}()
	}
	wg.Wait()
	require.Len(t, owners, 10)
	// Held contacts are not claimed again until released.
	evs, err := crm.ClaimContacts(ctx, s, "late", 10, 100, time.Minute)
	require.NoError(t, err)
	require.Empty(t, evs)
}

func TestAFailedEventBacksOffOnlyItsContactAndIsDeadLetteredWhenToldSo(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	bad1 := track(t, ctx, s, "poisoned", "bad")
	after := track(t, ctx, s, "poisoned", "after")
	track(t, ctx, s, "healthy", "ok")

	evs, err := crm.ClaimContacts(ctx, s, "d1", 10, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	var poisoned int64
	for _, ev := range evs {
		if ev.ID == bad1 {
			poisoned = ev.ContactID
		}
	}
	require.NoError(t, crm.FinishDispatch(ctx, s, "d1", crm.DispatchOutcome{ContactID: poisoned, Failed: bad1, Error: "boom", RetryIn: time.Hour}))
	for _, ev := range evs {
		if ev.ContactID != poisoned {
			require.NoError(t, crm.FinishDispatch(ctx, s, "d1", crm.DispatchOutcome{ContactID: ev.ContactID, Done: []int64{ev.ID}}))
		}
	}
	evs, err = crm.ClaimContacts(ctx, s, "d2", 10, 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, evs, "the failed contact backs off; the healthy one is done")

	// Its lease expires: the failed event comes back first, with its attempt counted.
	_, err = s.Exec(ctx, `UPDATE dispatch_leases SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	evs, err = crm.ClaimContacts(ctx, s, "d2", 10, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, bad1, evs[0].ID)
	require.Equal(t, 1, evs[0].Attempts)

	// Dead-lettered: the contact's next event goes on without it.
	require.NoError(t, crm.FinishDispatch(ctx, s, "d2", crm.DispatchOutcome{ContactID: poisoned, Failed: bad1, Error: "boom again", Dead: true}))
	evs, err = crm.ClaimContacts(ctx, s, "d3", 10, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, after, evs[0].ID)
	require.NoError(t, crm.FinishDispatch(ctx, s, "d3", crm.DispatchOutcome{ContactID: poisoned, Done: []int64{after}}))

	failed, err := crm.FailedEvents(ctx, s, 0, 10)
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, bad1, failed[0].ID)
	require.Equal(t, 2, failed[0].Attempts)
	require.Equal(t, "boom again", failed[0].LastError)

	// Retry puts it back in the queue.
	require.NoError(t, crm.RetryEvent(ctx, s, bad1))
	require.ErrorIs(t, crm.RetryEvent(ctx, s, bad1), crm.ErrNotFailed)
	evs, err = crm.ClaimContacts(ctx, s, "d4", 10, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, bad1, evs[0].ID)
	require.Zero(t, evs[0].Attempts)
}

func TestALeaseNotRenewedIsTakenOverAndMarkedRecovered(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	track(t, ctx, s, "ada", "one")
	evs, err := crm.ClaimContacts(ctx, s, "crashed", 10, 10, 50*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.False(t, evs[0].Recovered)
	kept, err := crm.RenewLeases(ctx, s, "crashed", []int64{evs[0].ContactID}, 50*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, []int64{evs[0].ContactID}, kept)

	require.Eventually(t, func() bool {
		evs, err = crm.ClaimContacts(ctx, s, "survivor", 10, 10, time.Minute)
		require.NoError(t, err)
		return len(evs) == 1
	}, 5*time.Second, 20*time.Millisecond)
	require.True(t, evs[0].Recovered, "the new holder knows calls may have been made")

	kept, err = crm.RenewLeases(ctx, s, "crashed", []int64{evs[0].ContactID}, time.Minute)
	require.NoError(t, err)
	require.Empty(t, kept, "the old holder learns it lost the contact")
	// And its late outcome changes nothing.
	require.NoError(t, crm.FinishDispatch(ctx, s, "crashed", crm.DispatchOutcome{ContactID: evs[0].ContactID, Done: []int64{evs[0].ID}}))
	var dispatched bool
	require.NoError(t, s.QueryRow(ctx, `SELECT dispatched_at IS NOT NULL FROM events WHERE id = $1`, evs[0].ID).Scan(&dispatched))
	require.False(t, dispatched)
}

func TestEventsSayWhichFieldsTheyChangedFromTraitsAndContext(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	changed := func(in crm.EventInput) []string {
		t.Helper()
		in.Source, in.OccurredAt = "test", time.Now()
		id, _, err := crm.RecordEvent(ctx, s, in)
		require.NoError(t, err)
		var out []string
		require.NoError(t, s.QueryRow(ctx, `SELECT changed FROM events WHERE id = $1`, id).Scan(&out))
		return out
	}
	require.Equal(t, []string{"email", "plan"}, changed(crm.EventInput{ExternalID: "ada", Name: "identify",
		Traits: map[string]any{"plan": "free", "email": "ada@example.com"}}))
	require.Empty(t, changed(crm.EventInput{ExternalID: "ada", Name: "identify", Traits: map[string]any{"plan": "free"}}),
		"the same value again changes nothing")
	require.Equal(t, []string{"plan"}, changed(crm.EventInput{ExternalID: "ada", Name: "Product Viewed",
		Traits: map[string]any{"plan": "pro"}}), "a track's context traits change fields too")
	require.Equal(t, []string{"country"}, changed(crm.EventInput{ExternalID: "ada", Name: "page",
		Observed: crm.Observed{Country: "FR"}}), "so does what the sender observed")
	require.Empty(t, changed(crm.EventInput{ExternalID: "ada", Name: "page"}))

	res, err := crm.UpdateFields(ctx, s, crm.Action{Key: "k1", ContactID: mustContact(t, ctx, s, "ada"), At: time.Now()}, map[string]any{"plan": "team"})
	require.NoError(t, err)
	require.Equal(t, []any{"plan"}, res.Detail["changed"])
	var fc []string
	require.NoError(t, s.QueryRow(ctx, `SELECT changed FROM events WHERE name = 'field_changed'`).Scan(&fc))
	require.Equal(t, []string{"plan"}, fc)
}

func TestAnAliasKeepsThePreviousIDFindingTheSameContact(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	track(t, ctx, s, "anon:v1", "Page Viewed")
	_, _, err := crm.RecordEvent(ctx, s, crm.EventInput{ExternalID: "ada", AliasOf: "v1", Name: "alias", Source: "test", OccurredAt: time.Now()})
	require.NoError(t, err)
	c, err := crm.ContactByExternalID(ctx, s, "ada")
	require.NoError(t, err)
	require.Equal(t, []string{"anon:v1"}, c.Aliases)
	byOld, err := crm.ContactByExternalID(ctx, s, "anon:v1")
	require.NoError(t, err)
	require.Equal(t, c.ID, byOld.ID)
	// A late event under the anonymous id reaches the user.
	track(t, ctx, s, "anon:v1", "Late")
	var owner int64
	require.NoError(t, s.QueryRow(ctx, `SELECT contact_id FROM events WHERE name = 'Late'`).Scan(&owner))
	require.Equal(t, c.ID, owner)
	var contacts int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM contacts`).Scan(&contacts))
	require.Equal(t, 1, contacts)
}

func mustContact(t *testing.T, ctx context.Context, s *pgxpool.Pool, ext string) int64 {
	t.Helper()
	c, err := crm.ContactByExternalID(ctx, s, ext)
	require.NoError(t, err)
	return c.ID
}

func TestARunThatEndedBeforeItsEnrollmentWasRecordedIsEnrolledClosed(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	track(t, ctx, s, "ada", "Ping")
	ada := mustContact(t, ctx, s, "ada")
	_, err := s.Exec(ctx, `INSERT INTO journeys (id) VALUES ('quick')`)
	require.NoError(t, err)
	// The run is so short it records its end before the dispatcher records its start.
	require.NoError(t, crm.RecordRunEnd(ctx, s, "quick", ada, "run-1", "completed", time.Now(), 7))
	require.NoError(t, crm.Enroll(ctx, s, "quick", ada, "", 1, "journey:quick:1", "run-1", 7, time.Now()))
	var open bool
	require.NoError(t, s.QueryRow(ctx, `SELECT ended_at IS NULL FROM enrollments WHERE journey_id = 'quick'`).Scan(&open))
	require.False(t, open)
}
