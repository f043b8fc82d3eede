package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/cli"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cli.Root()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
}

// validate takes folders, checks the templates journeys send, and reports every problem of
// every file in one pass, each with its line.
func TestValidateReportsEveryProblemOfAFolderWithItsLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "good.yaml", "id: good\ntrigger: {event: A}\nsteps: [{send_email: {template: hello}}]\n")
	write(t, dir, "bad.yaml", "id: bad\ntrigger: {event: A}\nsteps:\n  - {wait: 2 dayz}\n  - {goto: nowhere}\n  - {send_email: {template: missing}}\n")
	write(t, dir, "twin.yaml", "id: good\ntrigger: {event: B}\nsteps: [{add_tag: x}]\n")
	write(t, dir, "templates/hello.yaml", "subject: Hi\ntext: Hello\n")
	write(t, dir, "templates/broken.yaml", "subject: Hi\ntext: \"{{.Contact.Phone}}\"\n")
	out, errOut, err := run(t, "journeys", "validate", dir)
	require.Error(t, err)
	require.Contains(t, out, "good.yaml: ok (journey good, 1 steps)")
	for _, want := range []string{
		"bad.yaml:4: steps[0].wait: \"2 dayz\" is not a duration",
		"bad.yaml:5: steps[1].goto.step: \"nowhere\" is not a top-level step",
		"twin.yaml:1: id: \"good\" is the id of",
		"templates/broken.yaml: ",
	} {
		require.Contains(t, errOut, want)
	}
	require.Contains(t, errOut, "bad.yaml:6: steps[2].send_email.template: template \"missing\" does not exist", "found in the same pass")

	// A single file finds the templates folder beside it; without one it says so.
	_, errOut, err = run(t, "journeys", "validate", filepath.Join(dir, "good.yaml"))
	require.Error(t, err, "the folder beside it has a broken template")
	lone := t.TempDir()
	write(t, lone, "j.yaml", "id: j\ntrigger: {event: A}\nsteps: [{send_email: {template: x}}]\n")
	out, errOut, err = run(t, "journeys", "validate", filepath.Join(lone, "j.yaml"))
	require.NoError(t, err)
	require.Contains(t, errOut, "templates not checked")
	require.Contains(t, out, "ok")
}

// journeys apply puts a folder's templates, then its journeys, to a running starter; applied
// again, nothing changes; a folder with a problem applies nothing.
func TestApplyRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	api := &starter.API{DB: pool, WriteKeys: []string{"wk"}, AdminKey: "ak", Logger: nil}
	api.Logger = quietLogger()
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	write(t, dir, "welcome.yaml", "id: welcome\ntrigger: {event: Signed Up}\nsteps: [{send_email: {template: hello}}, {wait: 1d}, {send_email: {template: bye}}]\n")
	write(t, dir, "other.json", `{"id": "other", "trigger": {"event": "B"}, "steps": [{"add_tag": "x"}]}`)
	write(t, dir, "templates/hello.yaml", "subject: Hi {{field \"first_name\" \"there\"}}\ntext: Hello\n")
	write(t, dir, "templates/bye.yaml", "subject: Bye\nhtml: <p>Bye</p>\n")

	out, _, err := run(t, "journeys", "apply", dir, "--url", srv.URL, "--key", "ak")
	require.NoError(t, err)
	require.Contains(t, out, "template bye")
	require.Contains(t, out, "journey  welcome                  version 1")
	require.Contains(t, out, "journey  other                    version 1")
	tpl, err := crm.TemplateByID(ctx, pool, "hello")
	require.NoError(t, err)
	require.Equal(t, "Hi {{field \"first_name\" \"there\"}}", tpl.Subject)
	got := get(t, srv.URL+"/v1/journeys/welcome")
	def := got["definition"].(map[string]any)
	require.Equal(t, "welcome", def["id"])
	require.Len(t, def["steps"], 3)

	out, _, err = run(t, "journeys", "apply", dir, "--url", srv.URL, "--key", "ak")
	require.NoError(t, err)
	require.Contains(t, out, "journey  welcome                  unchanged (version 1)")

	write(t, dir, "welcome.yaml", "id: welcome\ntrigger: {event: Signed Up}\nsteps: [{send_email: {template: gone}}]\n")
	write(t, dir, "other.json", `{"id": "other", "trigger": {"event": "B"}, "steps": [{"add_tag": "y"}]}`)
	_, errOut, err := run(t, "journeys", "apply", dir, "--url", srv.URL, "--key", "ak")
	require.Error(t, err)
	require.Contains(t, err.Error(), "nothing applied")
	require.Contains(t, errOut, `template "gone" does not exist`)
	got = get(t, srv.URL+"/v1/journeys/other")
	require.Equal(t, float64(1), got["version"], "nothing applied")

	_, _, err = run(t, "journeys", "apply", dir, "--url", srv.URL, "--key", "wrong")
	require.Error(t, err)
}

func get(t *testing.T, url string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer ak")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// simulate runs a journey file with its templates for a contact and its events, printing the
// timeline; nothing is stored.
func TestSimulateAFileWithItsContactAndEvents(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "cart.yaml", `id: cart
trigger: {cart_abandoned: true}
goals: [{id: bought, when: {event: Order Completed, since_entry: true}, then: thanks}]
steps:
  - {id: nudge, send_email: {template: nudge}}
  - {wait: 3d}
  - {id: thanks, send_email: {template: thanks}}
`)
	write(t, dir, "templates/nudge.yaml", "subject: Your cart, {{field \"first_name\" \"friend\"}}\ntext: Come back\n")
	write(t, dir, "templates/thanks.yaml", "subject: Thanks\ntext: Thanks\n")
	write(t, dir, "ada.json", `{"id": "ada", "email": "ada@example.com", "traits": {"first_name": "Ada"}}`)
	write(t, dir, "events.yaml", "- {at: 1d, event: Order Completed, properties: {order_id: o-1}}\n")
	t.Setenv("DATABASE_URL", pgtest.URL(t))
	out, _, err := run(t, "journeys", "simulate", filepath.Join(dir, "cart.yaml"), "--contact", filepath.Join(dir, "ada.json"),
		"--events", filepath.Join(dir, "events.yaml"), "--start", "2026-03-02T08:00:00Z")
	require.NoError(t, err)
	require.Contains(t, out, "cart v1 for ada, entering Mon 2026-03-02 08:00 UTC")
	require.Contains(t, out, `email to ada@example.com: "Your cart, Ada"`)
	require.Contains(t, out, "+1d")
	require.Contains(t, out, "goals met: bought")
	require.True(t, strings.Contains(out, "completed at thanks"), out)
}
