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
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

func caps(t *testing.T, s string) []journey.Cap {
	t.Helper()
	c, err := journey.ParseCaps(s)
	require.NoError(t, err)
	return c
}

func noRender(*crm.EmailSend) error { return nil }

// Five journeys race to email each of 200 contacts at the same instant, and again whenever
// the sends they were deferred are allowed: every send goes out in the end, none twice, and no
// contact ever gets more than the caps allow in any window.
func TestRacingJourneysNeverExceedTheCapsInAnyWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	require.NoError(t, err)
	cfg.MaxConns = 24
	s, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, crm.Migrate(ctx, s))
	_, err = crm.PutTemplate(ctx, s, email.Template{ID: "hi", Subject: "Hi", Text: "Hello"})
	require.NoError(t, err)

	const contacts, journeys = 200, 5
	policy := journey.ChannelPolicy{Caps: caps(t, "2/24h,3/7d")}
	ids := make([]int64, contacts)
	for i := range ids {
		ids[i] = newContact(t, ctx, s, fmt.Sprintf("c%d", i), map[string]any{"email": fmt.Sprintf("c%d@example.com", i)})
	}
	type send struct {
		key     string
		contact int64
		at      time.Time
	}
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var pending []send
	for _, id := range ids {
		for j := range journeys {
			pending = append(pending, send{key: fmt.Sprintf("journey:j%d:%d/run/hello/1", j, id), contact: id, at: t0})
		}
	}
	rounds := 0
	for len(pending) > 0 {
		rounds++
		require.LessOrEqual(t, rounds, 10, "the deferred sends must all go out")
		// Every pending send tries at once, each at the moment it was told to come back.
		var mu sync.Mutex
		var next []send
		var wg sync.WaitGroup
		errs := make(chan error, len(pending))
		for _, p := range pending {
			wg.Add(1)
			go func() {
				defer wg.Done()
				check := &crm.SendCheck{Channel: journey.ChannelEmail, Policy: policy, Journey: "j", Step: "hello", At: p.at}
				es, err := crm.ClaimEmail(ctx, s, p.key, p.contact, "hi", check, noRender)
				if err != nil {
					errs <- err
					return
				}
				if es.Deferred != nil {
					if !es.Deferred.Until.After(p.at) {
						errs <- fmt.Errorf("%s deferred to %s, not after %s", p.key, es.Deferred.Until, p.at)
						return
					}
					mu.Lock()
					next = append(next, send{key: p.key, contact: p.contact, at: es.Deferred.Until})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		pending = next
	}
	t.Logf("%d sends went out in %d rounds", contacts*journeys, rounds)

	require.Equal(t, contacts*journeys, count(t, ctx, s, `SELECT count(*) FROM send_reservations`), "every send went out once")
	require.Equal(t, contacts*journeys, count(t, ctx, s, `SELECT count(*) FROM email_messages`))
	for _, id := range ids {
		rows, err := s.Query(ctx, `SELECT reserved_at FROM send_reservations WHERE contact_id = $1 ORDER BY reserved_at`, id)
		require.NoError(t, err)
		var at []time.Time
		for rows.Next() {
			var x time.Time
			require.NoError(t, rows.Scan(&x))
			at = append(at, x)
		}
		require.NoError(t, rows.Err())
		for _, c := range policy.Caps {
			// At most Max in any (t-Per, t]: the send Max places later is at least Per later.
			for i := 0; i+c.Max < len(at); i++ {
				require.GreaterOrEqual(t, at[i+c.Max].Sub(at[i]), c.Per.D, "contact %d breaks %s: %v", id, c, at)
			}
		}
	}
	// The first morning: two each, the rest deferred by the daily cap.
	require.Equal(t, 2*contacts, count(t, ctx, s, `SELECT count(*) FROM send_reservations WHERE reserved_at = $1`, t0))
	st, err := crm.Stats(ctx, s, "j")
	require.NoError(t, err)
	require.Contains(t, st.SendPolicy, crm.PolicyStats{Step: "hello", Channel: "email", Rule: "cap 2 per 1d", Deferred: 3 * contacts})
}

// A retried send keeps the place it took; a skipped send is skipped again on retry; a
// transactional send is neither held nor counted; a refused call gives its place back.
func TestReservationsAreKeyedByTheSendsIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, err := crm.PutTemplate(ctx, s, email.Template{ID: "hi", Subject: "Hi", Text: "Hello"})
	require.NoError(t, err)
	id := newContact(t, ctx, s, "ada", map[string]any{"email": "ada@example.com"})
	at := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	check := func(ifCapped string, transactional bool) *crm.SendCheck {
		return &crm.SendCheck{Channel: journey.ChannelEmail, Policy: journey.ChannelPolicy{Caps: caps(t, "1/24h")},
			IfCapped: ifCapped, Transactional: transactional, Journey: "j", Step: "s", At: at}
	}
	first, err := crm.ClaimEmail(ctx, s, "k1", id, "hi", check("", false), noRender)
	require.NoError(t, err)
	require.Nil(t, first.Deferred)
	again, err := crm.ClaimEmail(ctx, s, "k1", id, "hi", check("", false), noRender)
	require.NoError(t, err)
	require.Nil(t, again.Deferred, "a retry keeps its place")
	require.Equal(t, first.MessageID, again.MessageID)
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM send_reservations`))

	skipped, err := crm.ClaimEmail(ctx, s, "k2", id, "hi", check(journey.IfCappedSkip, false), noRender)
	require.NoError(t, err)
	require.NotNil(t, skipped.Deferred)
	require.Equal(t, crm.Deferral{Until: at.Add(24 * time.Hour), Rule: "cap 1 per 1d", Skipped: true},
		crm.Deferral{Until: skipped.Deferred.Until.UTC(), Rule: skipped.Deferred.Rule, Skipped: skipped.Deferred.Skipped})
	at = at.Add(25 * time.Hour) // the cap has room again, but a skipped send stays skipped
	skipped, err = crm.ClaimEmail(ctx, s, "k2", id, "hi", check(journey.IfCappedSkip, false), noRender)
	require.NoError(t, err)
	require.NotNil(t, skipped.Deferred)
	require.True(t, skipped.Deferred.Skipped)
	require.Zero(t, count(t, ctx, s, `SELECT count(*) FROM email_messages WHERE idempotency_key = 'k2'`))

	at = at.Add(-25 * time.Hour)
	receipt, err := crm.ClaimEmail(ctx, s, "k3", id, "hi", check("", true), noRender)
	require.NoError(t, err)
	require.Nil(t, receipt.Deferred, "transactional sends bypass the caps")
	require.Equal(t, 1, count(t, ctx, s, `SELECT count(*) FROM send_reservations`), "and are not counted")

	// A send of a journey without caps takes a place too: it counts toward others' caps.
	at = at.Add(24 * time.Hour)
	free, err := crm.ClaimEmail(ctx, s, "k6", id, "hi", &crm.SendCheck{Channel: journey.ChannelEmail, At: at}, noRender)
	require.NoError(t, err)
	require.Nil(t, free.Deferred)
	held, err := crm.ClaimEmail(ctx, s, "k7", id, "hi", check("", false), noRender)
	require.NoError(t, err)
	require.NotNil(t, held.Deferred, "the uncapped journey's send counts toward the cap")

	at = at.Add(24 * time.Hour)
	sms := &crm.SendCheck{Channel: journey.ChannelSMS, Policy: journey.ChannelPolicy{Caps: caps(t, "1/24h")}, At: at}
	ex, err := crm.ClaimExternal(ctx, s, "k4", "send_sms", id, sms)
	require.NoError(t, err)
	require.Nil(t, ex.Deferred)
	ex, err = crm.ClaimExternal(ctx, s, "k5", "send_sms", id, sms)
	require.NoError(t, err)
	require.NotNil(t, ex.Deferred, "one SMS a day")
	require.Zero(t, count(t, ctx, s, `SELECT count(*) FROM action_ledger WHERE idempotency_key = 'k5'`), "a deferred call claims nothing")
	require.NoError(t, crm.ReleaseExternal(ctx, s, "k4"))
	ex, err = crm.ClaimExternal(ctx, s, "k5", "send_sms", id, sms)
	require.NoError(t, err)
	require.Nil(t, ex.Deferred, "the refused call gave its place back")
}

// Quiet hours are local: 21:00 to 08:00 stays 21:00 to 08:00 in the contact's zone across the
// nights the clocks change, in New York and in Berlin (which change on different weekends).
func TestQuietHoursFollowLocalTimeAcrossDSTChanges(t *testing.T) {
	t.Parallel()
	q, err := journey.ParseQuietHours("21:00-08:00")
	require.NoError(t, err)
	p := journey.ChannelPolicy{QuietHours: q}
	for _, tc := range []struct {
		zone     string
		at       string // local
		wantUTC  string
		wantRule string
	}{
		// New York springs forward on 8 March 2026 (EST −5 → EDT −4): 08:00 EDT is 12:00 UTC.
		{"America/New_York", "2026-03-07 22:30", "2026-03-08 12:00", "quiet hours 21:00-08:00"},
		// It falls back on 1 November 2026 (EDT −4 → EST −5): 08:00 EST is 13:00 UTC.
		{"America/New_York", "2026-10-31 23:00", "2026-11-01 13:00", "quiet hours 21:00-08:00"},
		{"America/New_York", "2026-11-01 01:30", "2026-11-01 13:00", "quiet hours 21:00-08:00"},
		// Berlin springs forward on 29 March 2026 (CET +1 → CEST +2): 08:00 CEST is 06:00 UTC.
		{"Europe/Berlin", "2026-03-28 21:00", "2026-03-29 06:00", "quiet hours 21:00-08:00"},
		{"Europe/Berlin", "2026-03-29 07:59", "2026-03-29 06:00", "quiet hours 21:00-08:00"},
		// It falls back on 25 October 2026 (CEST +2 → CET +1): 08:00 CET is 07:00 UTC.
		{"Europe/Berlin", "2026-10-24 23:45", "2026-10-25 07:00", "quiet hours 21:00-08:00"},
		// Outside quiet hours the send goes at once.
		{"Europe/Berlin", "2026-10-25 08:00", "2026-10-25 07:00", ""},
		{"America/New_York", "2026-03-08 20:59", "2026-03-09 00:59", ""},
	} {
		loc, err := time.LoadLocation(tc.zone)
		require.NoError(t, err)
		now, err := time.ParseInLocation("2006-01-02 15:04", tc.at, loc)
		require.NoError(t, err)
		until, rule := crm.Allowed(p, nil, now, loc)
		require.Equal(t, tc.wantUTC, until.UTC().Format("2006-01-02 15:04"), "%s %s", tc.zone, tc.at)
		require.Equal(t, tc.wantRule, rule, "%s %s", tc.zone, tc.at)
		if tc.wantRule != "" {
			require.Equal(t, "08:00", until.In(loc).Format("15:04"), "%s %s: the local morning", tc.zone, tc.at)
		}
	}
}

// Caps and quiet hours together: the moment a cap frees may fall in quiet hours, which then
// move it to their end; the rule shown is the one that holds the send now.
func TestAllowedAppliesCapsAndQuietHoursUntilNeitherMovesTheSend(t *testing.T) {
	t.Parallel()
	q, err := journey.ParseQuietHours("21:00-08:00")
	require.NoError(t, err)
	p := journey.ChannelPolicy{Caps: caps(t, "2/24h"), QuietHours: q}
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	sent := []time.Time{time.Date(2026, 6, 1, 21, 30, 0, 0, berlin), time.Date(2026, 6, 1, 22, 0, 0, 0, berlin)}
	now := time.Date(2026, 6, 2, 12, 0, 0, 0, berlin)
	until, rule := crm.Allowed(p, sent, now, berlin)
	// The cap frees at the first send + 24h (21:30 Berlin), inside quiet hours: 08:00 next day.
	require.Equal(t, time.Date(2026, 6, 3, 8, 0, 0, 0, berlin), until)
	require.Equal(t, "cap 2 per 1d", rule)
	// Policy off: at once.
	until, rule = crm.Allowed(journey.ChannelPolicy{}, sent, now, berlin)
	require.Equal(t, now, until)
	require.Empty(t, rule)
}
