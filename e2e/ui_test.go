package e2e_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/dev"
)

// chromium finds Debian's chromium (apt-get install chromium), or skips the test saying so
// (fails it under CAIRN_E2E_STRICT).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "no headless Chromium on this machine: apt-get install chromium (.ci/run installs it)")
	return ""
}

// page is a page of headless Chromium, driven over the DevTools protocol: Temporal UI is a
// single-page app that keeps polling, so a one-shot --screenshot fires before it has drawn
// and --virtual-time-budget never ends.
type page struct {
	ws  *websocket.Conn
	seq int
}

// openPage starts headless Chromium on target and connects to its page.
func openPage(t *testing.T, bin, target string) *page {
	t.Helper()
	// The profile is not a t.TempDir: Chromium's helper processes can still be writing to it
	// as the test ends, which fails TempDir's cleanup. Chromium runs in a process group of its
	// own, killed whole, and the profile is removed after.
	profile, err := os.MkdirTemp("", "cairn-chromium-")
	require.NoError(t, err)
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--window-size=1440,1200", "--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir="+profile, "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		for range 10 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	var port string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), "DevTools listening on ws://127.0.0.1:"); ok {
			port, _, _ = strings.Cut(rest, "/")
			break
		}
	}
	require.NotEmpty(t, port, "Chromium printed no DevTools address")
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	req, _ := http.NewRequest("PUT", "http://127.0.0.1:"+port+"/json/new?"+target, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var tgt struct {
		WS string `json:"webSocketDebuggerUrl"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tgt))
	ws, err := websocket.Dial(tgt.WS, "", "http://127.0.0.1/")
	require.NoError(t, err)
	t.Cleanup(func() { ws.Close() })
	return &page{ws: ws}
}

// call sends one DevTools command and returns its result.
func (p *page) call(t *testing.T, method string, params map[string]any, result any) {
	t.Helper()
	p.seq++
	require.NoError(t, websocket.JSON.Send(p.ws, map[string]any{"id": p.seq, "method": method, "params": params}))
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		require.NoError(t, websocket.JSON.Receive(p.ws, &msg))
		if msg.ID != p.seq {
			continue // an event
		}
		require.Empty(t, msg.Error, method)
		require.NoError(t, json.Unmarshal(msg.Result, result))
		return
	}
}

// text is the page's visible text.
func (p *page) text(t *testing.T) string {
	var out struct {
		Result struct {
			Value string `json:"value"`
		} `json:"result"`
	}
	p.call(t, "Runtime.evaluate", map[string]any{"expression": "document.body ? document.body.innerText : ''", "returnByValue": true}, &out)
	return out.Result.Value
}

// screenshot saves the page as a PNG.
func (p *page) screenshot(t *testing.T, path string) {
	var out struct {
		Data string `json:"data"`
	}
	p.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &out)
	b, err := base64.StdEncoding.DecodeString(out.Data)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// TestDevsTemporalUIShowsDecodedPayloads opens a run in dev's Temporal UI in headless
// Chromium: the UI asks the starter's codec server to decode, so the run's input reads as
// JSON. The screenshot stays in the test's temp folder (printed), for a person to look at.
func TestDevsTemporalUIShowsDecodedPayloads(t *testing.T) {
	bin := chromium(t)
	state, err := os.MkdirTemp("", "cairn-dev-ui-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(state, 0o755))
	t.Cleanup(func() { os.RemoveAll(state) })
	journeys := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(journeys, "ui.yaml"), []byte("id: ui-check\ntrigger: {event: Signed Up}\nsteps: [{add_tag: seen-in-ui}, {id: rest, wait: 1h}]\n"), 0o644))
	d := startDev(t, state, journeys)
	defer d.stop(t)

	req, _ := http.NewRequest("POST", d.info.StarterURL+"/v1/track", strings.NewReader(`{"userId":"ui-ada","event":"Signed Up"}`))
	req.SetBasicAuth(d.info.WriteKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	ring, err := codec.ReadKeyRing(filepath.Join(state, dev.CodecKeyFile))
	require.NoError(t, err)
	cl := dial(t, d.info.TemporalGRPC, d.info.DatabaseURL, codec.Config{Ring: ring})
	var wfID, runID string
	require.Eventually(t, func() bool {
		for id := int64(1); id < 5; id++ {
			if desc, err := cl.DescribeWorkflowExecution(context.Background(), contract.WorkflowID("ui-check", id), ""); err == nil {
				wfID, runID = desc.GetWorkflowExecutionInfo().GetExecution().GetWorkflowId(), desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond)

	target := d.info.TemporalUI + "/namespaces/default/workflows/" + url.PathEscape(wfID) + "/" + runID + "/history"
	p := openPage(t, bin, target)
	var text string
	require.Eventually(t, func() bool {
		text = p.text(t)
		return strings.Contains(text, "contact_id")
	}, 60*time.Second, 500*time.Millisecond, "the run's input never showed decoded; the page said:\n%s", text)
	png := filepath.Join(t.TempDir(), "temporal-ui-run.png")
	p.screenshot(t, png)
	t.Logf("screenshot of %s: %s", target, png)
	if keep := os.Getenv("CAIRN_SCREENSHOT_DIR"); keep != "" {
		b, err := os.ReadFile(png)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(keep, "temporal-ui-run.png"), b, 0o644))
	}
	require.Contains(t, text, "ui-check")
	require.NotContains(t, text, codec.Encoding, "no payload is left encrypted")
}
