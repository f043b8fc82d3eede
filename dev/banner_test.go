package dev

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

func decoded(t *testing.T, doc string) *journey.Journey {
	t.Helper()
	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	return j
}

// The banner's curl starts a journey dev actually loaded: welcome when there is one, else a
// journey triggered by a track event (with its trigger's properties), else one started by the
// API.
func TestTheBannersCurlNamesAJourneyDevLoaded(t *testing.T) {
	t.Parallel()
	in := Info{WriteKey: "wk", AdminKey: "ak", StarterURL: "http://s"}
	tagged := decoded(t, "id: tagged\ntrigger: {tag_added: vip}\nsteps: [{add_tag: x}]")
	order := decoded(t, "id: order\ntrigger: {event: Order Completed, where: {currency: EUR}}\nsteps: [{add_tag: x}]")
	welcome := decoded(t, "id: welcome\ntrigger: {event: Signed Up}\nsteps: [{add_tag: x}]")

	id, curl := sampleCurl([]*journey.Journey{tagged, order, welcome}, in)
	require.Equal(t, "welcome", id)
	require.Contains(t, curl, `"event":"Signed Up"`)
	id, curl = sampleCurl([]*journey.Journey{tagged, order}, in)
	require.Equal(t, "order", id)
	require.Contains(t, curl, `"event":"Order Completed"`)
	require.Contains(t, curl, `"properties":{"currency":"EUR"}`)
	id, curl = sampleCurl([]*journey.Journey{tagged}, in)
	require.Equal(t, "tagged", id)
	require.Contains(t, curl, "http://s/v1/journeys/tagged/start")
	id, _ = sampleCurl(nil, in)
	require.Empty(t, id)

	var b bytes.Buffer
	in.Sample, in.Curl, in.Journeys, in.JourneysPage = "order", curl, []string{"order"}, "http://s/ui/journeys"
	in.PostgresData = "/var/tmp/cairn-dev-x/postgres"
	printBanner(&b, in, 0)
	require.Contains(t, b.String(), "Start the order journey for a contact")
	require.Contains(t, b.String(), "Journey pages   http://s/ui/journeys")
	require.Contains(t, b.String(), "data in /var/tmp/cairn-dev-x/postgres (running as root")
}

// Run as root from a folder the postgres user cannot reach, dev keeps PostgreSQL's data in
// /var/tmp, in a folder named after the state folder.
func TestPostgresDataGoesWhereThePostgresUserCanReachIt(t *testing.T) {
	t.Parallel()
	private, err := os.MkdirTemp("", "cairn-private-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(private) })
	require.NoError(t, os.Chmod(private, 0o700))
	state := filepath.Join(private, ".cairn")
	reach := func() string {
		t.Helper()
		dir, err := pgReachable(state)
		require.NoError(t, err)
		return dir
	}
	got := reach()
	if os.Geteuid() != 0 {
		require.Equal(t, state, got, "not root: PostgreSQL runs as this user")
		return
	}
	require.True(t, strings.HasPrefix(got, "/var/tmp/cairn-dev-"), got)
	require.Equal(t, got, reach(), "the same folder every start")
	// The state folder deleted and made again (its codec keys with it): the old data, whose
	// payloads the new keys cannot open, is not found again.
	require.NoError(t, os.RemoveAll(state))
	again := reach()
	require.True(t, strings.HasPrefix(again, "/var/tmp/cairn-dev-"), again)
	require.NotEqual(t, got, again, "a new state folder, new data")
	require.NoError(t, os.Chmod(private, 0o755))
	require.Equal(t, state, reach(), "reachable: in the state folder")
}
