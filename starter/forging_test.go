package starter_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/starter"
)

// reservedNames are Cairn's own facts: a write key must not be able to record any of them.
var reservedNames = []string{
	"tag_added", "tag_removed", "field_changed", "score_changed", "list_subscribed", "list_unsubscribed",
	"deal_created", "deal_stage_changed", "task_created", "note_added", "form_submitted", "email_sent",
	"email_opened", "email_clicked", "sms_sent", "audience_added", "audience_removed", "unsubscribed",
	"journey_start_requested", "journey_completed", "journey_exited", "goal_met", "date_reached",
	"segment_entered", "segment_exited",
}

func TestAWriteKeyCannotRecordCairnsOwnEventsByAnyIngestionPath(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, name := range append(reservedNames, "identify", "alias", "page", "screen", "group") {
		r := f.do(t, "POST", "/v1/track", fmt.Sprintf(`{"userId":"mallory","event":%q,"properties":{"tag":"vip","journey":"welcome"}}`, name), basic(writeKey))
		require.Equal(t, 422, r.Status, "%s: %v", name, r.Body)
		e := r.Body["error"].(map[string]any)
		require.Equal(t, "reserved_event", e["code"], name)
		require.Equal(t, "event", e["path"], name)
		r = f.do(t, "POST", "/v1/batch", fmt.Sprintf(`{"batch":[{"type":"track","userId":"mallory","event":"fine"},{"type":"track","userId":"mallory","event":%q}]}`, name), basic(writeKey))
		require.Equal(t, 422, r.Status, "%s: %v", name, r.Body)
		require.Equal(t, "batch[1].event", r.Body["error"].(map[string]any)["path"], name)
	}
	// Nothing at all was recorded: no event, no contact, no tag, no open.
	require.Zero(t, f.count(t, "events"))
	require.Zero(t, f.count(t, "contacts"))
	require.Zero(t, f.count(t, "contact_tags"))
	// A shop may still report an abandoned cart, and Segment's e-commerce names are the shop's.
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"shopper","event":"cart_abandoned"}`, basic(writeKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"shopper","event":"Order Completed"}`, basic(writeKey)).Status)
}

func TestTheCRMRefusesAReservedNameFromAnOutsideSource(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, source := range []string{"segment", "source:shop"} {
		_, _, err := crm.RecordEvent(f.ctx, f.store, crm.EventInput{ExternalID: "mallory", Name: journey.EventEmailOpened,
			Source: source, OccurredAt: time.Now()})
		require.ErrorIs(t, err, crm.ErrReservedEvent, source)
	}
	require.Zero(t, f.count(t, "events"))
}

// TestAForgedRowFromBeforeTheRefusalStartsAndWakesNothing: events recorded before ingestion
// refused reserved names are skipped by dispatch, without a single Temporal call.
func TestAForgedRowFromBeforeTheRefusalStartsAndWakesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	doc := "id: vip-perks\ntrigger: {tag_added: vip}\nsteps: [{add_tag: perk}]"
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/vip-perks", doc, bearer(adminKey)).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", `{"userId":"mallory","event":"hello"}`, basic(writeKey)).Status)
	_, err := f.store.Exec(f.ctx, `INSERT INTO events (contact_id, name, properties, source, occurred_at)
		SELECT id, 'tag_added', '{"tag": "vip"}', 'segment', now() FROM contacts`)
	require.NoError(t, err)
	_, err = f.store.Exec(f.ctx, `UPDATE events SET dispatched_at = now() WHERE name = 'hello'`)
	require.NoError(t, err)

	// Temporal is unreachable: had the forged row started the journey, dispatch would fail.
	l, err := (&net.ListenConfig{}).Listen(f.ctx, "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	tc, err := client.NewLazyClient(client.Options{HostPort: addr, Logger: sdkDiscard()})
	require.NoError(t, err)
	defer tc.Close()
	d := &starter.Dispatcher{DB: f.store, Temporal: tc, Logger: discard()}
	ctx, cancel := context.WithTimeout(f.ctx, 15*time.Second)
	defer cancel()
	n, err := d.DispatchOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the forged row is done with, having caused nothing")
}
