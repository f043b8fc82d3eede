package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/dev"
)

type devRun struct {
	info   dev.Info
	cancel context.CancelFunc
	done   chan error
}

func startDev(t *testing.T, state, journeys string) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan dev.Info, 1)
	r := &devRun{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- dev.Run(ctx, dev.Config{
			StateDir: state, ExamplesDir: journeys, Out: io.Discard, Logger: quiet(), Ready: ready,
			HTTPAddr: fmt.Sprintf("127.0.0.1:%d", dev.FreePort()), TemporalPort: dev.FreePort(), UIPort: dev.FreePort(),
			SMTPPort: dev.FreePort(), MailPort: dev.FreePort(),
		})
	}()
	select {
	case r.info = <-ready:
	case err := <-r.done:
		t.Fatalf("dev stopped during start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev not ready after 60s")
	}
	return r
}

func (r *devRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop within 60s")
	}
}

func TestDevResumesAJourneyInFlightAfterRestartWithoutRepeatingEffects(t *testing.T) {
	// Not t.TempDir(): its parent is private to root, and PostgreSQL runs as postgres.
	state, err := os.MkdirTemp("", "cairn-dev-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(state, 0o755))
	t.Cleanup(func() { os.RemoveAll(state) })
	journeys := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(journeys, "drip.yaml"), []byte(`
id: drip
trigger: {event: Signed Up}
steps:
  - {add_tag: dripping}
  - {send_email: {template: first}}
  - {id: pause, wait: 5s}
  - {send_email: {template: second}}
`), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(journeys, "templates"), 0o755))
	for _, name := range []string{"first", "second"} {
		require.NoError(t, os.WriteFile(filepath.Join(journeys, "templates", name+".yaml"),
			[]byte("subject: The "+name+" one\ntext: Hello {{field \"first_name\" \"there\"}}\n"), 0o644))
	}

	first := startDev(t, state, journeys)
	require.Contains(t, first.info.TemporalUI, "http://127.0.0.1:")
	body := `{"userId":"cy","event":"Signed Up","context":{"traits":{"email":"cy@example.com"}}}`
	req, _ := http.NewRequest("POST", first.info.StarterURL+"/v1/track", strings.NewReader(body))
	req.SetBasicAuth(first.info.WriteKey, "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	ring, err := codec.ReadKeyRing(filepath.Join(state, dev.CodecKeyFile))
	require.NoError(t, err, "dev keeps its codec key ring in the state folder")
	cl := dial(t, first.info.TemporalGRPC, first.info.DatabaseURL, codec.Config{Ring: ring})
	wfID := contract.WorkflowID("drip", 1)
	require.Eventually(t, func() bool {
		v, err := cl.QueryWorkflow(context.Background(), wfID, "", contract.QueryState)
		var st contract.State
		return err == nil && v.Get(&st) == nil && st.CurrentStep == "pause"
	}, 20*time.Second, 50*time.Millisecond, "the contact reaches the wait")
	cl.Close()
	first.stop(t)

	second := startDev(t, state, journeys)
	defer second.stop(t)
	require.Equal(t, first.info.WriteKey, second.info.WriteKey, "keys survive a restart")
	cl = dial(t, second.info.TemporalGRPC, second.info.DatabaseURL, codec.Config{Ring: ring})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var st contract.State
	require.NoError(t, cl.GetWorkflow(ctx, wfID, "").Get(ctx, &st))
	require.Equal(t, contract.StatusCompleted, st.Status)

	pool, err := pgxpool.New(ctx, second.info.DatabaseURL)
	require.NoError(t, err)
	defer pool.Close()
	var tags, emails, runs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM contact_tags WHERE tag = 'dripping'`).Scan(&tags))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM email_messages WHERE status = 'sent'`).Scan(&emails))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE name = 'Signed Up'`).Scan(&runs))
	require.Equal(t, 1, tags)
	require.Equal(t, 2, emails, "first before the restart, second after, neither twice")
	resp, err = http.Get(second.info.MailURL + "/messages.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	var caught []map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&caught))
	require.Len(t, caught, 1, "the second dev's catcher got the second email (the first went to the first dev's)")
	require.Equal(t, "The second one", caught[0]["subject"])
	require.Equal(t, 1, runs)
}

// Run as root from a folder the postgres user cannot reach (a root user's home, mode 0700),
// dev still starts: PostgreSQL's data goes to /var/tmp, and the banner says where.
func TestDevAsRootFromAPrivateFolderStillStarts(t *testing.T) {
	if os.Geteuid() != 0 {
		// As any other user, PostgreSQL runs as that user, who can reach its own folders, so
		// the fallback this test proves never happens. CI runs as root (.ci/run installs with
		// apt-get), so under CAIRN_E2E_STRICT this skip fails instead, as a missing tool does.
		missing(t, "not root: only a root dev runs PostgreSQL as the postgres user, the case this test proves")
	}
	private, err := os.MkdirTemp("", "cairn-root-home-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(private, 0o700))
	t.Cleanup(func() { os.RemoveAll(private) })
	state := filepath.Join(private, ".cairn")
	d := startDev(t, state, t.TempDir())
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(d.info.PostgresData)) })
	defer d.stop(t)
	require.True(t, strings.HasPrefix(d.info.PostgresData, "/var/tmp/cairn-dev-"), d.info.PostgresData)
	pool, err := pgxpool.New(context.Background(), d.info.DatabaseURL)
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, pool.Ping(context.Background()))
}
