package starter_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/starter"
)

// The OpenAPI document names every route the router has, with the same path parameters, and
// nothing else: adding a route without describing it fails here.
func TestOpenAPINamesEveryRouteAndNothingElse(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(starter.OpenAPI, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)
	documented := map[string]bool{}
	ids := map[string]bool{}
	for path, ops := range doc.Paths {
		wildcards := regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1)
		for method, op := range ops {
			route := strings.ToUpper(method) + " " + path
			documented[route] = true
			require.NotEmpty(t, op.Responses, route)
			require.False(t, ids[op.OperationID], "operationId %s used twice", op.OperationID)
			ids[op.OperationID] = true
			var inPath []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					inPath = append(inPath, p.Name)
				}
			}
			var want []string
			for _, w := range wildcards {
				want = append(want, w[1])
			}
			require.Equal(t, want, inPath, "path parameters of %s", route)
		}
	}
	api := &starter.API{CodecServer: http.NotFoundHandler(), Logger: discard()}
	api.Handler()
	routed := map[string]bool{}
	for _, r := range api.Routes() {
		switch r {
		case "/": // the catch-all 404
		case "/codec/":
			routed["POST /codec/decode"], routed["POST /codec/encode"] = true, true
		default:
			routed[r] = true
		}
	}
	var missing, extra []string
	for r := range routed {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !routed[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	require.Empty(t, missing, "routes the OpenAPI document does not describe")
	require.Empty(t, extra, "operations the router does not have")

	f := setup(t)
	resp, err := http.Get(f.srv.URL + "/v1/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, string(starter.OpenAPI), string(b))
}

// Every route is in the fuzz suite's list, so every route is fuzzed.
func TestEveryRouteIsFuzzed(t *testing.T) {
	t.Parallel()
	api := &starter.API{Logger: discard()}
	api.Handler()
	for _, r := range api.Routes() {
		if r == "/" || strings.HasPrefix(r, "OPTIONS ") && r != "OPTIONS /v1/track" {
			continue // the catch-all; preflights answer alike
		}
		method, pattern, _ := strings.Cut(r, " ")
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\}`).ReplaceAllString(regexp.QuoteMeta(pattern), `[^/]+`) + "$")
		found := false
		for _, f := range fuzzRoutes {
			path, _, _ := strings.Cut(f.path, "?")
			if f.method == method && re.MatchString(path) {
				found = true
			}
		}
		require.True(t, found, "route %s is not in fuzzRoutes", r)
	}
}

func TestListsPageInKeyOrderWithNext(t *testing.T) {
	t.Parallel()
	f := setup(t)
	admin := bearer(adminKey)
	for _, id := range []string{"b", "a", "c"} {
		require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/"+id, `{"id":"`+id+`","trigger":{"event":"A"},"steps":[{"add_tag":"x"}]}`, admin).Status)
		require.Contains(t, []int{200, 201}, f.do(t, "PUT", "/v1/templates/t-"+id, `{"subject":"S","text":"T"}`, admin).Status)
		require.Equal(t, 200, f.do(t, "PUT", "/v1/fields/f_"+id, `{"type":"date"}`, admin).Status)
		require.Equal(t, 200, f.do(t, "PUT", "/v1/pipelines/p-"+id, `{"name":"P","stages":[{"id":"one","name":"One"}]}`, admin).Status)
		require.Equal(t, 201, f.do(t, "PUT", "/v1/segments/s-"+id, `{"condition":{"tag":"x"}}`, admin).Status)
		require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"u-`+id+`"}`, basic(writeKey)).Status)
	}
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/a", `{"id":"a","trigger":{"event":"A"},"steps":[{"add_tag":"y"}]}`, admin).Status)
	for _, c := range []struct{ path, list, first, next string }{
		{"/v1/journeys?limit=2", "journeys", "a", "b"},
		{"/v1/journeys/a/versions?limit=1", "versions", "", "1"},
		{"/v1/templates?limit=2", "templates", "t-a", "t-b"},
		{"/v1/fields?limit=2", "fields", "f_a", "f_b"},
		{"/v1/pipelines?limit=2", "pipelines", "p-a", "p-b"},
		{"/v1/segments?limit=2", "segments", "s-a", "s-b"},
		{"/v1/contacts?limit=2", "contacts", "", ""},
	} {
		r := f.do(t, "GET", c.path, "", admin)
		require.Equal(t, 200, r.Status, c.path)
		items := r.Body[c.list].([]any)
		require.Len(t, items, min(2, len(items)), c.path)
		if c.first != "" {
			key := "id"
			if c.list == "fields" {
				key = "name"
			}
			require.Equal(t, c.first, items[0].(map[string]any)[key], c.path)
		}
		if c.next != "" {
			require.Equal(t, c.next, r.Body["next"], c.path)
		}
		next := r.Body["next"].(string)
		sep := "&"
		r = f.do(t, "GET", c.path+sep+"after="+next, "", admin)
		require.Equal(t, 200, r.Status)
		require.NotEmpty(t, r.Body[c.list], c.path+" has a second page")
	}
	r := f.do(t, "GET", "/v1/journeys/a/versions/2", "", admin)
	require.Equal(t, float64(2), r.Body["version"])
	require.Equal(t, 404, f.do(t, "GET", "/v1/journeys/a/versions/9", "", admin).Status)
	require.Equal(t, 404, f.do(t, "GET", "/v1/journeys/nope/versions", "", admin).Status)
	for _, bad := range []struct{ path, where string }{
		{"/v1/journeys?limit=0", "limit"}, {"/v1/contacts?after=x", "after"}, {"/v1/journeys/a/versions/x", "url path version"},
	} {
		r := f.do(t, "GET", bad.path, "", admin)
		require.Equal(t, 400, r.Status, bad.path)
		require.Equal(t, bad.where, errorOf(t, r)["path"])
	}
}

func TestJourneyNamingAnUnknownTemplateIsRefusedWithItsLine(t *testing.T) {
	t.Parallel()
	f := setup(t)
	doc := "id: mail\ntrigger: {event: A}\nsteps:\n  - {add_tag: x}\n  - if: {tag: x}\n    then:\n      - {send_email: {template: later}}\n"
	r := f.do(t, "PUT", "/v1/journeys/mail", doc, bearer(adminKey))
	require.Equal(t, 422, r.Status)
	probs := errorOf(t, r)["problems"].([]any)
	require.Len(t, probs, 1)
	p := probs[0].(map[string]any)
	require.Equal(t, "steps[1].then[0].send_email.template", p["path"])
	require.Equal(t, float64(7), p["line"])
	require.Contains(t, p["message"], `template "later" does not exist`)
	require.Zero(t, f.count(t, "journey_versions"))
	require.Contains(t, []int{200, 201}, f.do(t, "PUT", "/v1/templates/later", `{"subject":"S","text":"T"}`, bearer(adminKey)).Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/mail", doc, bearer(adminKey)).Status)
}

func TestArchivedJourneyStartsNoRunAndTakesNoVersionUntilUnarchived(t *testing.T) {
	t.Parallel()
	f := setup(t)
	admin := bearer(adminKey)
	doc := `{"id":"arc","trigger":{"event":"A"},"steps":[{"add_tag":"x"}]}`
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/arc", doc, admin).Status)
	r := f.do(t, "POST", "/v1/journeys/arc/archive", "", admin)
	require.Equal(t, 200, r.Status)
	require.Equal(t, true, r.Body["archived"])
	r = f.do(t, "POST", "/v1/journeys/arc/start", `{"userId":"ada"}`, admin)
	require.Equal(t, 409, r.Status)
	require.Equal(t, "archived", errorOf(t, r)["code"])
	require.Equal(t, 409, f.do(t, "PUT", "/v1/journeys/arc", `{"id":"arc","trigger":{"event":"A"},"steps":[{"add_tag":"y"}]}`, admin).Status)
	require.Equal(t, 200, f.do(t, "PUT", "/v1/journeys/arc", doc, admin).Status, "the same version again changes nothing")
	require.Equal(t, 400, f.do(t, "POST", "/v1/journeys/arc/unarchive", `{"cancel_runs":true}`, admin).Status)
	require.Equal(t, 400, f.do(t, "POST", "/v1/journeys/arc/archive", `{"cancel":true}`, admin).Status)
	require.Equal(t, 404, f.do(t, "POST", "/v1/journeys/nope/archive", "", admin).Status)
	require.Equal(t, 200, f.do(t, "POST", "/v1/journeys/arc/unarchive", "", admin).Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/arc", `{"id":"arc","trigger":{"event":"A"},"steps":[{"add_tag":"y"}]}`, admin).Status)
	r = f.do(t, "GET", "/v1/journeys?limit=10", "", admin)
	require.Nil(t, r.Body["journeys"].([]any)[0].(map[string]any)["archived_at"])
}

// Contact operations record what a journey's action records, once per Idempotency-Key.
func TestContactOperationsRecordTheSameEventsOncePerKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada","traits":{"plan":"free"}}`, basic(writeKey)).Status)
	op := func(method, path, body, key string) reply {
		return f.do(t, method, path, body, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+adminKey)
			if key != "" {
				r.Header.Set(starter.IdempotencyHeader, key)
			}
		})
	}
	for range 2 {
		r := op("POST", "/v1/contacts/ada/tags", `{"tag":"vip"}`, "k1")
		require.Equal(t, 200, r.Status)
		require.Equal(t, []any{"vip"}, r.Body["contact"].(map[string]any)["tags"])
	}
	require.Equal(t, true, op("POST", "/v1/contacts/ada/tags", `{"tag":"vip"}`, "k1").Body["replayed"])
	r := op("PATCH", "/v1/contacts/ada/fields", `{"fields":{"plan":"pro","coupon":null}}`, "k2")
	require.Equal(t, 200, r.Status)
	require.Equal(t, "pro", r.Body["contact"].(map[string]any)["traits"].(map[string]any)["plan"])
	require.Equal(t, 200, op("POST", "/v1/contacts/ada/subscriptions", `{"list":"newsletter","subscribed":true}`, "k3").Status)
	require.Equal(t, 200, op("DELETE", "/v1/contacts/ada/tags/vip", "", "k4").Status)
	require.Equal(t, 200, op("DELETE", "/v1/contacts/ada/tags/vip", "", "k4").Status)
	var names []string
	rows, err := f.store.Query(f.ctx, `SELECT name FROM events WHERE source = 'cairn' ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.Equal(t, []string{"tag_added", "field_changed", "list_subscribed", "tag_removed"}, names, "as a journey's steps record them, each once")

	before := f.count(t, "events")
	for _, bad := range []struct {
		method, path, body, key string
		status                  int
		where                   string
	}{
		{"POST", "/v1/contacts/ada/tags", `{"tag":"vip"}`, "", 400, "header Idempotency-Key"},
		{"POST", "/v1/contacts/ada/tags", `{"tag":""}`, "k9", 400, "tag"},
		{"POST", "/v1/contacts/ada/tags", `{"tags":"x"}`, "k9", 400, "tags"},
		{"POST", "/v1/contacts/nobody/tags", `{"tag":"x"}`, "k9", 404, ""},
		{"PATCH", "/v1/contacts/ada/fields", `{"fields":{}}`, "k9", 400, "fields"},
		{"PATCH", "/v1/contacts/ada/fields", `{"fields":"pro"}`, "k9", 400, "fields"},
		{"POST", "/v1/contacts/ada/subscriptions", `{"list":"n"}`, "k9", 400, "subscribed"},
		{"POST", "/v1/contacts/ada/subscriptions", `{"subscribed":true}`, "k9", 400, "list"},
	} {
		r := op(bad.method, bad.path, bad.body, bad.key)
		require.Equal(t, bad.status, r.Status, "%s %s", bad.path, bad.body)
		if bad.where != "" {
			require.Equal(t, bad.where, errorOf(t, r)["path"], bad.body)
		}
	}
	require.Equal(t, before, f.count(t, "events"), "nothing recorded by refused requests")
}

func TestSimulateRunsTheStoredJourneyAndRefusesBadInputWithPaths(t *testing.T) {
	t.Parallel()
	f := setup(t)
	admin := bearer(adminKey)
	require.Contains(t, []int{200, 201}, f.do(t, "PUT", "/v1/templates/hi", `{"subject":"Hi {{field \"first_name\" \"there\"}}","text":"Hello"}`, admin).Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/sim", `{"id":"sim","trigger":{"event":"A"},"steps":[{"wait":"90d"},{"id":"hello","send_email":{"template":"hi"}}]}`, admin).Status)
	before := f.count(t, "contacts")
	r := f.do(t, "POST", "/v1/journeys/sim/simulate", `{"contact":{"id":"ada","email":"ada@example.com","traits":{"first_name":"Ada"}},"start":"2026-01-01T00:00:00Z"}`, admin)
	require.Equal(t, 200, r.Status, r.Body)
	require.Equal(t, "completed", r.Body["status"])
	msgs := r.Body["messages"].([]any)
	require.Len(t, msgs, 1)
	m := msgs[0].(map[string]any)
	require.Equal(t, "Hi Ada", m["subject"])
	require.Equal(t, "hello", m["step"])
	require.Equal(t, "2026-04-01T00:00:00Z", m["at"], "90 days later, in virtual time")
	require.Equal(t, before, f.count(t, "contacts"), "nothing stored")
	for _, bad := range []struct {
		body   string
		status int
		where  string
	}{
		{`{"events":[{"at":"1h","event":"A"},{"at":"soon","event":"B"}]}`, 400, "events[1]"},
		{`{"events":[{"at":"1h","event":""}]}`, 422, "events[0].event"},
		{`{"events":[{"at":"1h","event":"alias"}]}`, 422, "events[0].event"},
		{`{"contact":{"name":"x"}}`, 400, "contact.name"},
		{`{"contact":{"tags":"vip"}}`, 400, "contact.tags"},
		{`{"version":"2"}`, 400, "version"},
		{`{"version":7}`, 404, "version"},
		{`{"evnts":[]}`, 400, "evnts"},
	} {
		r := f.do(t, "POST", "/v1/journeys/sim/simulate", bad.body, admin)
		require.Equal(t, bad.status, r.Status, bad.body)
		require.Equal(t, bad.where, errorOf(t, r)["path"], bad.body)
	}
	require.Equal(t, 404, f.do(t, "POST", "/v1/journeys/nope/simulate", `{}`, admin).Status)
}

func TestMigrateChecksEveryStepOfTheMapWithPathsAndWritesNothingRefused(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.Temporal = noRuns{} })
	admin := bearer(adminKey)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/mg", `{"id":"mg","trigger":{"event":"A"},"steps":[{"id":"w1","wait":"1d"},{"if":{"tag":"x"},"then":[{"id":"deep","wait":"1h"}]}]}`, admin).Status)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/mg", `{"id":"mg","trigger":{"event":"A"},"steps":[{"id":"w2","wait":"1d"},{"id":"end-here","add_tag":"y"}]}`, admin).Status)
	r := f.do(t, "POST", "/v1/journeys/mg/migrate", `{"from":1,"to":2,"map":{"w1":"w2","deep":"nope","ghost":"w2"},"default":"zzz"}`, admin)
	require.Equal(t, 422, r.Status)
	var paths []string
	for _, p := range errorOf(t, r)["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string))
	}
	require.Equal(t, []string{"map.deep", "map.ghost", "default"}, paths)
	for _, bad := range []struct {
		body   string
		status int
		where  string
	}{
		{`{"from":1,"to":1}`, 422, "to"},
		{`{"from":1,"to":9}`, 422, "to"},
		{`{"to":2}`, 422, "from"},
		{`{"from":"1","to":2}`, 400, "from"},
		{`{"from":1,"to":2,"map":{"w1":3}}`, 422, "map.w1"},
		{`{"from":1,"to":2,"dryrun":true}`, 400, "dryrun"},
	} {
		r := f.do(t, "POST", "/v1/journeys/mg/migrate", bad.body, admin)
		require.Equal(t, bad.status, r.Status, bad.body)
		require.Equal(t, bad.where, errorOf(t, r)["path"], bad.body)
	}
	require.Zero(t, f.count(t, "journey_migrations"), "no partial rows")
	r = f.do(t, "POST", "/v1/journeys/mg/migrate", `{"from":1,"to":2,"map":{"w1":"w2"},"dry_run":true}`, admin)
	require.Equal(t, 200, r.Status, r.Body)
	unmapped := r.Body["unmapped"].([]any)
	require.Len(t, unmapped, 2, "2-if and deep are left out")
	require.Zero(t, f.count(t, "journey_migrations"), "a dry run records nothing")
	r = f.do(t, "POST", "/v1/journeys/mg/migrate", `{"from":1,"to":2,"map":{"w1":"w2"}}`, admin)
	require.Equal(t, 202, r.Status)
	require.Equal(t, 1, f.count(t, "journey_migrations"))
	require.Equal(t, 404, f.do(t, "GET", "/v1/journeys/mg/migrations/9", "", admin).Status)
	require.Equal(t, 400, f.do(t, "GET", "/v1/journeys/mg/migrations/x", "", admin).Status)
}

func TestPagesTakeTheAdminKeyAsBasicPasswordAndDrawTheJourney(t *testing.T) {
	t.Parallel()
	f := setupWith(t, func(a *starter.API) { a.Temporal = noRuns{}; a.TemporalUI = "http://ui.test" })
	admin := bearer(adminKey)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/journeys/pg", `{"id":"pg","trigger":{"event":"A"},"goals":[{"id":"won","when":{"tag":"won"},"then":"last"}],
		"steps":[{"id":"w","wait":"1d"},{"branch":[{"when":{"tag":"a"},"steps":[{"add_tag":"a1"}]},{"else":[]}]},{"id":"last","add_tag":"z"}]}`, admin).Status)
	get := func(path string, auth func(*http.Request)) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		if auth != nil {
			auth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	status, body, h := get("/ui/journeys/pg", nil)
	require.Equal(t, 401, status)
	require.Contains(t, h.Get("WWW-Authenticate"), "Basic")
	require.Contains(t, body, `"code":"unauthorized"`, "a JSON error, unless a browser asks for HTML")
	status, body, h = get("/ui/journeys/pg", func(r *http.Request) { r.Header.Set("Accept", "text/html,application/xhtml+xml") })
	require.Equal(t, 401, status)
	require.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"))
	require.Contains(t, body, "the admin key is needed")
	status, _, _ = get("/ui/journeys/pg", func(r *http.Request) { r.SetBasicAuth("me", "wrong") })
	require.Equal(t, 401, status)
	status, body, h = get("/ui/journeys/pg", func(r *http.Request) { r.SetBasicAuth("me", adminKey) })
	require.Equal(t, 200, status)
	require.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"))
	for _, want := range []string{`data-step="w"`, `data-step="2-branch"`, `data-step="2-branch.1.1-add_tag"`, `data-step="last"`, `data-goal="won"`,
		`http://ui.test/namespaces/`, "CairnStep"} {
		require.Contains(t, body, want)
	}
	status, body, _ = get("/ui/journeys", admin)
	require.Equal(t, 200, status)
	require.Contains(t, body, `href="/ui/journeys/pg"`)
	require.Equal(t, 200, f.do(t, "POST", "/v1/identify", `{"userId":"ada"}`, basic(writeKey)).Status)
	status, body, _ = get("/ui/contacts/ada", admin)
	require.Equal(t, 200, status)
	require.Contains(t, body, `data-contact="ada"`)
	status, _, _ = get("/ui/contacts/nobody", admin)
	require.Equal(t, 404, status)
}
