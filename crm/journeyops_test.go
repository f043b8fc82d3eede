package crm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
)

func applyDoc(t *testing.T, ctx context.Context, db crm.DB, doc string) *journey.Journey {
	t.Helper()
	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	_, _, err = crm.ApplyJourney(ctx, db, j, doc)
	require.NoError(t, err)
	return j
}

// Stats count runs by how they ended (an end recorded before the start too), goals per run,
// and each email step's messages with their opens, clicks and unsubscribes, once each.
func TestStatsCountRunsGoalsAndEachEmailStep(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	applyDoc(t, ctx, s, "id: st\ntrigger: {event: A}\nsteps: [{id: hello, send_email: {template: hi}}]")
	_, err := crm.PutTemplate(ctx, s, email.Template{ID: "hi", Subject: "Hi", Text: "Hello"})
	require.NoError(t, err)
	at := time.Now()
	var ids []int64
	for i, ext := range []string{"a", "b", "c", "d"} {
		id := newContact(t, ctx, s, ext, map[string]any{"email": ext + "@example.com"})
		ids = append(ids, id)
		run := "run-" + ext
		require.NoError(t, crm.Enroll(ctx, s, "st", id, "", 1, "journey:st:x", run, int64(i+1), at))
		// Re-enrolling the same run (the trigger reaching the open run) is no new entry.
		require.NoError(t, crm.Enroll(ctx, s, "st", id, "", 1, "journey:st:x", run, int64(i+1), at))
	}
	require.NoError(t, crm.RecordRunEnd(ctx, s, "st", ids[0], "run-a", "completed", at, 0))
	require.NoError(t, crm.RecordRunEnd(ctx, s, "st", ids[1], "run-b", "exited", at, 0))
	require.NoError(t, crm.RecordGoal(ctx, s, "st", ids[0], "bought", "run-a", at))
	// A run that ended before the dispatcher recorded its start still counts once, as ended.
	e := newContact(t, ctx, s, "e", nil)
	require.NoError(t, crm.RecordRunEnd(ctx, s, "st", e, "run-e", "completed", at, 0))
	require.NoError(t, crm.Enroll(ctx, s, "st", e, "", 1, "journey:st:x", "run-e", 9, at))

	// Two messages from the hello step; one opened twice and clicked, one unsubscribed from.
	var msgs []int64
	for i, id := range ids[:2] {
		key := "journey:st:" + string(rune('0'+i)) + "/run/hello/1"
		es, err := crm.ClaimEmail(ctx, s, key, id, "hi", nil, func(*crm.EmailSend) error { return nil })
		require.NoError(t, err)
		_, err = crm.CompleteEmail(ctx, s, key, es, "Hi", "m@x", at)
		require.NoError(t, err)
		msgs = append(msgs, es.MessageID)
	}
	open := email.Claims{Kind: email.KindOpen, MessageID: msgs[0], ContactID: ids[0]}
	require.NoError(t, crm.RecordEngagement(ctx, s, open, at, 0))
	require.NoError(t, crm.RecordEngagement(ctx, s, open, at.Add(time.Hour), 0))
	require.NoError(t, crm.RecordEngagement(ctx, s, email.Claims{Kind: email.KindClick, MessageID: msgs[0], ContactID: ids[0], URL: "https://x"}, at, 0))
	require.NoError(t, crm.Unsubscribe(ctx, s, email.Claims{Kind: email.KindUnsubscribe, MessageID: msgs[1], ContactID: ids[1]}, at))

	st, err := crm.Stats(ctx, s, "st")
	require.NoError(t, err)
	require.Equal(t, int64(5), st.Entered)
	require.Equal(t, int64(2), st.Running)
	require.Equal(t, int64(2), st.Completed)
	require.Equal(t, int64(1), st.Exited)
	require.Equal(t, map[string]int64{"bought": 1}, st.Goals)
	require.Equal(t, []crm.EmailStepStats{{Step: "hello", Template: "hi", Sent: 2, Opened: 1, Clicked: 1, Unsubscribed: 1}}, st.Emails)
}

func TestArchivedJourneyStartsNothingAndTakesNoNewVersion(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	doc := "id: arch\ntrigger: {event: A}\nsteps: [{add_tag: a}]"
	applyDoc(t, ctx, s, doc)
	v, err := crm.ArchiveJourney(ctx, s, "arch", true, time.Now())
	require.NoError(t, err)
	require.NotNil(t, v.ArchivedAt)
	got, err := crm.TriggeredBy(ctx, s, "A")
	require.NoError(t, err)
	require.Empty(t, got)
	j, err := journey.Decode([]byte("id: arch\ntrigger: {event: A}\nsteps: [{add_tag: b}]"))
	require.NoError(t, err)
	_, _, err = crm.ApplyJourney(ctx, s, j, "")
	require.ErrorIs(t, err, crm.ErrArchived)
	_, err = crm.ArchiveJourney(ctx, s, "arch", false, time.Now())
	require.NoError(t, err)
	got, err = crm.TriggeredBy(ctx, s, "A")
	require.NoError(t, err)
	require.Len(t, got, 1)
	_, err = crm.ArchiveJourney(ctx, s, "nope", true, time.Now())
	require.ErrorIs(t, err, crm.ErrNotFound)
}

func TestListsPageInKeyOrder(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	for _, id := range []string{"c", "a", "b"} {
		applyDoc(t, ctx, s, "id: "+id+"\ntrigger: {event: A}\nsteps: [{add_tag: x}]")
		_, err := crm.PutTemplate(ctx, s, email.Template{ID: "t-" + id, Subject: "S"})
		require.NoError(t, err)
		_, err = crm.PutPipeline(ctx, s, crm.Pipeline{ID: "p-" + id, Stages: []crm.Stage{{ID: "one"}, {ID: "two"}}})
		require.NoError(t, err)
		require.NoError(t, crm.PutField(ctx, s, crm.FieldDefinition{Name: "f_" + id, Type: "date"}))
		_, err = crm.PutSegment(ctx, s, crm.Segment{ID: "s-" + id, Condition: journey.Condition{Tag: "x"}})
		require.NoError(t, err)
		newContact(t, ctx, s, "u-"+id, nil)
	}
	applyDoc(t, ctx, s, "id: a\ntrigger: {event: A}\nsteps: [{add_tag: y}]")

	js, err := crm.ListJourneys(ctx, s, "", 2)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, []string{js[0].ID, js[1].ID})
	require.Equal(t, 2, js[0].Version, "the newest version")
	js, err = crm.ListJourneys(ctx, s, "b", 2)
	require.NoError(t, err)
	require.Len(t, js, 1)
	vs, err := crm.JourneyVersions(ctx, s, "a", 1, 10)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, 2, vs[0].Version)
	_, err = crm.JourneyVersions(ctx, s, "nope", 0, 10)
	require.ErrorIs(t, err, crm.ErrNotFound)

	ts, err := crm.ListTemplates(ctx, s, "t-a", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"t-b", "t-c"}, []string{ts[0].ID, ts[1].ID})
	ps, err := crm.ListPipelines(ctx, s, "", 1)
	require.NoError(t, err)
	require.Equal(t, "p-a", ps[0].ID)
	require.Equal(t, []crm.Stage{{ID: "one", Position: 1}, {ID: "two", Position: 2}}, ps[0].Stages)
	fs, err := crm.ListFields(ctx, s, "f_a", 10)
	require.NoError(t, err)
	require.Len(t, fs, 2)
	ss, err := crm.ListSegments(ctx, s, "", 10)
	require.NoError(t, err)
	require.Len(t, ss, 3)
	cs, err := crm.ListContacts(ctx, s, 0, 2)
	require.NoError(t, err)
	require.Len(t, cs, 2)
	cs, err = crm.ListContacts(ctx, s, cs[1].ID, 2)
	require.NoError(t, err)
	require.Len(t, cs, 1)
}

func TestMissingTemplatesAreListedInOrder(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, err := crm.PutTemplate(ctx, s, email.Template{ID: "have", Subject: "S"})
	require.NoError(t, err)
	missing, err := crm.MissingTemplates(ctx, s, []string{"x", "have", "y"})
	require.NoError(t, err)
	require.Equal(t, []string{"x", "y"}, missing)
}

// A scratch CRM is a migrated schema with the definitions copied in: writes there leave the
// real CRM untouched, and rolling back leaves no schema behind.
func TestScratchCRMCopiesDefinitionsAndLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, err := crm.PutTemplate(ctx, s, email.Template{ID: "hi", Subject: "Hi"})
	require.NoError(t, err)
	applyDoc(t, ctx, s, "id: j\ntrigger: {event: A}\nsteps: [{add_tag: x}]")
	began := time.Now()
	var scratch string
	err = crm.WithTx(ctx, s, func(tx pgx.Tx) error {
		require.NoError(t, crm.Scratch(ctx, tx))
		require.NoError(t, tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&scratch))
		require.True(t, strings.HasPrefix(scratch, "cairn_scratch_"), scratch)
		_, err := crm.TemplateByID(ctx, tx, "hi")
		require.NoError(t, err)
		_, _, err = crm.RecordEvent(ctx, tx, crm.EventInput{ExternalID: "sim", Name: "A", Source: "test", OccurredAt: time.Now()})
		require.NoError(t, err)
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM contacts`).Scan(&n))
		require.Equal(t, 1, n)
		return errors.New("roll back")
	})
	require.EqualError(t, err, "roll back")
	t.Logf("scratch CRM made in %s", time.Since(began))
	require.Zero(t, count(t, ctx, s, `SELECT count(*) FROM contacts`))
	// Other tests make and drop schemas of their own meanwhile: look for this one alone.
	require.Zero(t, count(t, ctx, s, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, scratch), "the scratch schema is gone")
}
