package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// eval runs JavaScript in the page and decodes its JSON-able result into v.
func (p *page) eval(t *testing.T, expr string, v any) {
	t.Helper()
	var out struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails json.RawMessage `json:"exceptionDetails"`
	}
	p.call(t, "Runtime.evaluate", map[string]any{"expression": "JSON.stringify(" + expr + ")", "returnByValue": true}, &out)
	require.Empty(t, out.ExceptionDetails, expr)
	var s string
	require.NoError(t, json.Unmarshal(out.Result.Value, &s))
	require.NoError(t, json.Unmarshal([]byte(s), v))
}

// open navigates to url with the admin key as a bearer token, and waits for the page to load.
func (p *page) open(t *testing.T, url string) {
	t.Helper()
	var ignore map[string]any
	p.call(t, "Network.enable", map[string]any{}, &ignore)
	p.call(t, "Network.setExtraHTTPHeaders", map[string]any{"headers": map[string]string{"Authorization": "Bearer " + adminKey}}, &ignore)
	p.call(t, "Page.navigate", map[string]any{"url": url}, &ignore)
	require.Eventually(t, func() bool {
		var state, loc string
		p.eval(t, "document.readyState", &state)
		p.eval(t, "location.href", &loc)
		return state == "complete" && loc == url
	}, 20*time.Second, 100*time.Millisecond)
}

// keep saves a screenshot in the test's temp folder, and in CAIRN_SCREENSHOT_DIR when set.
func (p *page) keep(t *testing.T, name string) {
	t.Helper()
	png := filepath.Join(t.TempDir(), name)
	p.screenshot(t, png)
	t.Logf("screenshot: %s", png)
	if dir := os.Getenv("CAIRN_SCREENSHOT_DIR"); dir != "" {
		b, err := os.ReadFile(png)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
}

// TestJourneyAndContactPagesInChromium renders the journey page and a contact's page in
// headless Chromium and checks their DOM: every step drawn with the contacts there now and a
// link to them in Temporal UI, the goal beside its step, the paths of a branch; the contact's
// runs with links to their journey and to Temporal UI.
func TestJourneyAndContactPagesInChromium(t *testing.T) {
	bin := chromium(t)
	s := setup(t)
	s.template(t, "pg-hello", "https://example.com/hello")
	s.template(t, "pg-thanks", "https://example.com/thanks")
	s.apply(t, "e2e-page", `
id: e2e-page
name: Page check
trigger: {event: Joined}
exit: {tag: unsubscribed}
goals: [{id: bought, when: {event: Order Completed, since_entry: true}, then: thanks}]
steps:
  - {id: hello, send_email: {template: pg-hello}}
  - branch:
      - when: {field: group, equals: hold}
        steps: [{id: hold, wait: 1h}]
      - else: [{id: tagged, add_tag: resting}]
  - id: ask
    wait_until: {condition: {event: Clicked}, timeout: 1h}
    then: [{id: clicked, add_tag: clicker}]
  - split:
      - {percent: 50, steps: [{id: left-path, add_tag: a}]}
      - {percent: 50, steps: [{id: right-path, add_tag: b}]}
  - {id: thanks, send_email: {template: pg-thanks}}
`)
	var msgs []string
	for i := range 5 {
		group := "rest"
		if i < 3 {
			group = "hold"
		}
		msgs = append(msgs, fmt.Sprintf(`{"type":"track","userId":"p-%d","event":"Joined","context":{"traits":{"email":"p-%d@example.com","group":%q}}}`, i, i, group))
	}
	s.batch(t, msgs)
	s.eventuallyCount(t, "CairnJourney = 'e2e-page' AND ExecutionStatus = 'Running' AND CairnStep = 'hold'", 3, 30*time.Second)
	s.eventuallyCount(t, "CairnJourney = 'e2e-page' AND ExecutionStatus = 'Running' AND CairnStep = 'ask'", 2, 30*time.Second)

	p := openPage(t, bin, "about:blank")
	p.open(t, s.url+"/ui/journeys/e2e-page")
	type box struct {
		ID, Kind, Count, Href string
		W, H                  float64
	}
	var boxes []box
	p.eval(t, `[...document.querySelectorAll('svg.flow g.step')].map(g => ({ID: g.dataset.step, Kind: g.dataset.kind, Count: g.dataset.count,
		Href: g.querySelector('a').getAttribute('href'), W: g.getBoundingClientRect().width, H: g.getBoundingClientRect().height}))`, &boxes)
	byID := map[string]box{}
	for _, b := range boxes {
		byID[b.ID] = b
		require.Greater(t, b.W, 100.0, "%s is drawn", b.ID)
		require.Greater(t, b.H, 40.0, "%s is drawn", b.ID)
	}
	for _, id := range []string{"hello", "2-branch", "hold", "tagged", "ask", "clicked", "4-split", "left-path", "right-path", "thanks"} {
		require.Contains(t, byID, id, "step %s is drawn", id)
		require.True(t, strings.HasPrefix(byID[id].Href, "http://temporal-ui.test/namespaces/default/workflows?query="), byID[id].Href)
		require.Contains(t, byID[id].Href, "CairnStep+%3D+%27"+strings.ReplaceAll(id, "-", "-")+"%27", "the link opens the contacts at %s", id)
	}
	require.Equal(t, "3", byID["hold"].Count)
	require.Equal(t, "2", byID["ask"].Count)
	require.Equal(t, "0", byID["hello"].Count)
	var goals []map[string]string
	p.eval(t, `[...document.querySelectorAll('svg.flow g.goal')].map(g => ({id: g.dataset.goal, then: g.dataset.then}))`, &goals)
	require.Equal(t, []map[string]string{{"id": "bought", "then": "thanks"}}, goals)
	var edges int
	p.eval(t, `document.querySelectorAll('svg.flow path.edge').length`, &edges)
	require.Greater(t, edges, 10, "steps and paths are joined")
	var cards map[string]string
	p.eval(t, `Object.fromEntries([...document.querySelectorAll('#counts .card')].map(c => [c.dataset.count, c.querySelector('b').textContent]))`, &cards)
	require.Equal(t, "5", cards["entered"])
	require.Equal(t, "5", cards["running"])
	var title string
	p.eval(t, `document.querySelector('h1#journey').textContent.trim()`, &title)
	require.Equal(t, "Page check", title)
	p.keep(t, "journey-page.png")

	p.open(t, s.url+"/ui/contacts/p-0")
	var runs []map[string]string
	p.eval(t, `[...document.querySelectorAll('#runs tr.run')].map(r => ({journey: r.dataset.journey, status: r.dataset.status, step: r.dataset.step,
		page: r.querySelector('a.journey').getAttribute('href'), temporal: r.querySelector('a.temporal').getAttribute('href')}))`, &runs)
	require.Len(t, runs, 1)
	require.Equal(t, "e2e-page", runs[0]["journey"])
	require.Equal(t, "running", runs[0]["status"])
	require.Equal(t, "hold", runs[0]["step"])
	require.Equal(t, "/ui/journeys/e2e-page", runs[0]["page"])
	require.True(t, strings.HasPrefix(runs[0]["temporal"], "http://temporal-ui.test/namespaces/default/workflows/journey:e2e-page:"), runs[0]["temporal"])
	var contact string
	p.eval(t, `document.querySelector('h1#contact').dataset.contact`, &contact)
	require.Equal(t, "p-0", contact)
	p.keep(t, "contact-page.png")
}
