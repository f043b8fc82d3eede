package starter_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/starter"
)

// The fuzz suite drives every route of the starter's real handler, over the real store, with
// mutated requests. Whatever arrives: no 5xx, no panic, and a refused request (4xx) changes
// no row. Two entry points share it: FuzzHandlers for Go's fuzzer (`go test ./starter -run '^$'
// -fuzz FuzzHandlers -fuzztime 60s`, as CI does), and TestMutatedRequests..., a fixed-seed
// run of a few thousand mutations inside the ordinary test command.

// fuzzRoute is one endpoint: how to call it and with which key.
type fuzzRoute struct {
	method, path string // {id} is replaced by the fuzzed id
	auth         string // "write", "admin", "signed", "none"
}

var fuzzRoutes = []fuzzRoute{
	{"POST", "/v1/track", "write"}, {"POST", "/v1/identify", "write"}, {"POST", "/v1/page", "write"},
	{"POST", "/v1/screen", "write"}, {"POST", "/v1/group", "write"}, {"POST", "/v1/alias", "write"},
	{"POST", "/v1/batch", "write"}, {"POST", "/v1/t", "write"}, {"POST", "/v1/b", "write"},
	{"POST", "/v1/forms/{id}", "write"}, {"PUT", "/v1/deals/{id}", "write"},
	{"POST", "/v1/sources/shop/events", "signed"},
	{"PUT", "/v1/forms/{id}", "admin"}, {"PUT", "/v1/journeys/{id}", "admin"}, {"GET", "/v1/journeys/{id}", "admin"},
	{"POST", "/v1/journeys/{id}/pause", "admin"}, {"POST", "/v1/journeys/{id}/resume", "admin"},
	{"POST", "/v1/journeys/{id}/start", "admin"}, {"GET", "/v1/contacts/{id}", "admin"},
	{"GET", "/v1/events?status=failed&before={id}", "admin"}, {"POST", "/v1/events/{id}/retry", "admin"},
	{"PUT", "/v1/scoring-rules/{id}", "admin"}, {"PUT", "/v1/fields/{id}", "admin"}, {"GET", "/v1/fields", "admin"},
	{"PUT", "/v1/segments/{id}", "admin"}, {"GET", "/v1/segments/{id}", "admin"}, {"GET", "/v1/segments/{id}/contacts", "admin"},
	{"PUT", "/v1/pipelines/{id}", "admin"}, {"GET", "/v1/pipelines/{id}", "admin"},
	{"PUT", "/v1/campaigns/{id}", "admin"}, {"GET", "/v1/campaigns/{id}", "admin"}, {"POST", "/v1/campaigns/{id}/pause", "admin"},
	{"POST", "/v1/campaigns/{id}/resume", "admin"}, {"POST", "/v1/campaigns/{id}/fire", "admin"},
	{"PUT", "/v1/objects/{id}", "admin"}, {"GET", "/v1/objects/{id}", "admin"}, {"PUT", "/v1/objects/subscription/records/{id}", "admin"},
	{"GET", "/v1/objects/subscription/records/{id}", "admin"}, {"DELETE", "/v1/objects/subscription/records/{id}", "admin"},
	{"PUT", "/v1/templates/{id}", "admin"}, {"GET", "/v1/templates/{id}", "admin"}, {"POST", "/v1/templates/{id}/preview", "admin"},
	{"GET", "/v1/t/o/{id}", "none"}, {"GET", "/v1/t/c/{id}", "none"}, {"GET", "/v1/t/u/{id}", "none"}, {"POST", "/v1/t/u/{id}", "none"},
	{"OPTIONS", "/v1/track", "none"}, {"GET", "/healthz", "none"}, {"GET", "/livez", "none"}, {"GET", "/readyz", "none"},
	{"GET", "/metrics", "none"},
	{"GET", "/v1/journeys?limit=2&after={id}", "admin"}, {"GET", "/v1/journeys/{id}/versions", "admin"},
	{"GET", "/v1/journeys/{id}/versions/1", "admin"}, {"POST", "/v1/journeys/{id}/archive", "admin"},
	{"POST", "/v1/journeys/{id}/unarchive", "admin"}, {"POST", "/v1/journeys/{id}/simulate", "admin"},
	{"POST", "/v1/journeys/{id}/migrate", "admin"}, {"GET", "/v1/journeys/{id}/migrations/1", "admin"},
	{"POST", "/v1/journeys/{id}/migrations/1/resume", "admin"}, {"GET", "/v1/journeys/{id}/stats", "admin"},
	{"GET", "/v1/journeys/{id}/split-tests", "admin"},
	{"GET", "/v1/contacts?after={id}", "admin"}, {"POST", "/v1/contacts/{id}/tags", "admin"},
	{"DELETE", "/v1/contacts/{id}/tags/vip", "admin"}, {"PATCH", "/v1/contacts/{id}/fields", "admin"},
	{"POST", "/v1/contacts/{id}/subscriptions", "admin"}, {"GET", "/v1/segments?after={id}", "admin"},
	{"GET", "/v1/templates?after={id}", "admin"}, {"GET", "/v1/pipelines?after={id}", "admin"},
	{"GET", "/v1/openapi.json", "none"}, {"GET", "/ui/journeys", "admin"}, {"GET", "/ui/journeys/{id}", "admin"},
	{"GET", "/ui/contacts/{id}", "admin"}, {"GET", "/v1/contacts/{id}/export", "admin"}, {"DELETE", "/v1/contacts/{id}", "admin"},
	{"GET", "/v1/schema/journey.json", "none"}, {"POST", "/v1/i", "write"}, {"POST", "/v1/p", "write"},
	{"POST", "/v1/s", "write"}, {"POST", "/v1/g", "write"}, {"POST", "/v1/a", "write"},
}

// fuzzSeed is one request: a route (index into fuzzRoutes), the id in its path, its body,
// and whether the body is sent gzipped.
type fuzzSeed struct {
	route int
	id    string
	body  string
	gzip  bool
}

func routeIndex(method, path string) int {
	for i, r := range fuzzRoutes {
		if r.method == method && r.path == path {
			return i
		}
	}
	panic("no route " + method + " " + path)
}

// fuzzSeeds are every route's valid bodies and the hostile inputs found when Cairn was probed.
func fuzzSeeds() []fuzzSeed {
	long := strings.Repeat("x", 2700)
	tags := make([]string, 30000)
	for i := range tags {
		tags[i] = fmt.Sprintf(`{"tag":"t%d"}`, i)
	}
	deep := strings.Repeat(`{"not":`, 5000) + `{"tag":"a"}` + strings.Repeat("}", 5000)
	r := routeIndex
	return []fuzzSeed{
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"Signed Up","properties":{"plan":"pro"},"context":{"traits":{"email":"ada@example.com"}},"messageId":"m1"}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"Pro\u0000be"}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"` + long + `","event":"e"}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"` + long + `"}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"e","messageId":"` + long + `"}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"tag_added","properties":{"tag":"vip"}}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"journey_start_requested","properties":{"journey":"welcome"}}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"email_opened"}`, true},
		{r("POST", "/v1/track"), "", "{\"userId\":\"ada\",\"event\":\"e\",\"properties\":{\"k\":\"\xff\xfe\"}}", false},
		{r("POST", "/v1/identify"), "", `{"userId":"ada","traits":{"plan":"pro","country":"PT","email":"ada@example.com"}}`, false},
		{r("POST", "/v1/identify"), "", `{"anonymousId":"v1","traits":{"note":"` + long + `"}}`, false},
		{r("POST", "/v1/page"), "", `{"userId":"ada","name":"Pricing","properties":{"path":"/pricing"}}`, false},
		{r("POST", "/v1/screen"), "", `{"userId":"ada","name":"Home"}`, false},
		{r("POST", "/v1/group"), "", `{"userId":"ada","groupId":"acme","traits":{"name":"Acme"}}`, false},
		{r("POST", "/v1/alias"), "", `{"userId":"ada","previousId":"v1"}`, false},
		{r("POST", "/v1/batch"), "", `{"batch":[{"type":"track","userId":"ada","event":"e"},{"type":"identify","userId":"bo","traits":{"plan":"free"}}]}`, true},
		{r("POST", "/v1/batch"), "", `{"batch":[{"type":"track","userId":"ada","event":"e"},{"type":"track","userId":"bo","event":"tag_added"}]}`, false},
		{r("POST", "/v1/t"), "", `{"writeKey":"` + writeKey + `","userId":"ada","event":"e"}`, false},
		{r("POST", "/v1/b"), "", `{"writeKey":"` + writeKey + `","batch":[{"type":"page","userId":"ada"}]}`, false},
		{r("POST", "/v1/forms/{id}"), "demo", `{"mail":"ada@example.com"}`, false},
		{r("POST", "/v1/forms/{id}"), "demo", "mail=ada%40example.com&x=%00&y=%FF", false},
		{r("PUT", "/v1/deals/{id}"), "crm-1", `{"userId":"ada","title":"Acme","pipeline":"sales","stage":"won","value":900}`, false},
		{r("PUT", "/v1/deals/{id}"), "crm-2", `{"userId":"ada","pipeline":"` + long + `","stage":"won"}`, false},
		{r("POST", "/v1/sources/shop/events"), "", `{"type":"track","userId":"ada","event":"Order Completed","properties":{"order_id":"o1","products":[{"sku":"S1"}]}}`, false},
		{r("PUT", "/v1/forms/{id}"), "demo", `{"fields":{"mail":"email"},"list":"newsletter","tags":["lead"]}`, false},
		{r("PUT", "/v1/templates/{id}"), "hello", `{"subject":"Hi {{field \"first_name\" \"there\"}}","text":"Hello","html":"<p>Hello</p>"}`, false},
		{r("PUT", "/v1/journeys/{id}"), "welcome", "id: welcome\ntrigger: {event: Signed Up}\nsteps: [{add_tag: new}, {wait: 1d}, {send_email: {template: hello}}]", false},
		{r("PUT", "/v1/journeys/{id}"), "welcome", "id: welcome\ntrigger: {event: Signed Up}\nsteps: [{add_tag: new}, {wait: 2d}, {send_email: {template: hello}}]", false},
		{r("PUT", "/v1/journeys/{id}"), "nope", "id: nope\ntrigger: {event: A}\nsteps: [{send_email: {template: missing}}]", false},
		{r("PUT", "/v1/journeys/{id}"), "deep", "id: deep\ntrigger: {event: e}\nsteps:\n" + strings.Repeat("  - if: {tag: a}\n    then:\n", 40), false},
		{r("GET", "/v1/journeys/{id}"), "welcome", "", false},
		{r("POST", "/v1/journeys/{id}/pause"), "welcome", "", false},
		{r("POST", "/v1/journeys/{id}/resume"), "welcome", "", false},
		{r("POST", "/v1/journeys/{id}/start"), "welcome", `{"userId":"ada","messageId":"s1"}`, false},
		{r("GET", "/v1/contacts/{id}"), "ada", "", false},
		{r("GET", "/v1/contacts/{id}"), "\xff\xfe", "", false},
		{r("GET", "/v1/contacts/{id}"), "a\x00b", "", false},
		{r("GET", "/v1/events?status=failed&before={id}"), "12", "", false},
		{r("POST", "/v1/events/{id}/retry"), "1", "", false},
		{r("PUT", "/v1/scoring-rules/{id}"), "pricing", `{"event":"page","where":{"path":"/pricing"},"points":5,"cap":{"points":15,"per":"1d"}}`, false},
		{r("PUT", "/v1/fields/{id}"), "plan", `{"type":"text","label":"Plan"}`, false},
		{r("PUT", "/v1/fields/{id}"), "note", `{"type":"text","label":"Note"}`, false},
		{r("GET", "/v1/fields"), "", "", false},
		{r("PUT", "/v1/segments/{id}"), "pros", `{"condition":{"all":[{"field":"plan","equals":"pro"},{"score":{"gte":5}}]}}`, false},
		{r("PUT", "/v1/segments/{id}"), "bad", `{"condition":{"event":"x","since_entry":true}}`, false},
		{r("PUT", "/v1/segments/{id}"), "keyed", `{"condition":{"event":"x","where":{"cart_id":{"trigger":"cart_id"}}}}`, false},
		{r("PUT", "/v1/journeys/{id}"), "carts", "id: carts\ntrigger: {cart_abandoned: true}\nkey: cart_id\nsteps: [{wait_until: {condition: {event: Order Completed, where: {cart_id: {trigger: cart_id}}}, timeout: 1d}}]", false},
		{r("PUT", "/v1/segments/{id}"), "deep", `{"condition":` + deep + `}`, false},
		{r("PUT", "/v1/segments/{id}"), "wide", `{"condition":{"any":[` + strings.Join(tags, ",") + `]}}`, true},
		{r("GET", "/v1/segments/{id}"), "pros", "", false},
		{r("GET", "/v1/segments/{id}/contacts"), "pros", "", false},
		{r("PUT", "/v1/pipelines/{id}"), "sales", `{"name":"Sales","stages":[{"id":"lead","name":"Lead"},{"id":"won","name":"Won"}]}`, false},
		{r("GET", "/v1/pipelines/{id}"), "sales", "", false},
		{r("PUT", "/v1/campaigns/{id}"), "spring", "segment: pros\njourney: welcome\nschedule: {every: 7d}\nrate: 500", false},
		{r("PUT", "/v1/campaigns/{id}"), "news", `{"segment":"pros","message":{"template":"hello"},"schedule":{"cron":"0 9 * * MON","timezone":"Europe/Lisbon"}}`, false},
		{r("PUT", "/v1/campaigns/{id}"), "bad", `{"segment":"nobody","journey":"welcome","schedule":{"cron":"99 * * * *"},"rate":0}`, false},
		{r("GET", "/v1/campaigns/{id}"), "spring", "", false},
		{r("POST", "/v1/campaigns/{id}/pause"), "spring", "", false},
		{r("POST", "/v1/campaigns/{id}/resume"), "spring", "", false},
		{r("POST", "/v1/campaigns/{id}/fire"), "spring", "", false},
		{r("PUT", "/v1/objects/{id}"), "subscription", "name: Subscription\nschema: {type: object, properties: {status: {enum: [active, cancelled]}, renews: {type: string, format: date}}, required: [status]}\nsources: [{event: Subscription Updated, id: subscription_id}]", false},
		{r("PUT", "/v1/objects/{id}"), "vehicle", `{"schema":{"type":"object","properties":{"vin":{"type":"strng"},"record":{},"x":{"$ref":"https://example.com/s.json"}}},"sources":[{"event":"tag_added"}]}`, false},
		{r("GET", "/v1/objects/{id}"), "subscription", "", false},
		{r("PUT", "/v1/objects/subscription/records/{id}"), "sub_1", `{"userId":"ada","fields":{"status":"active","renews":"2026-05-01"}}`, false},
		{r("PUT", "/v1/objects/subscription/records/{id}"), "sub_2", `{"userId":"ada","fields":{"status":"paused","renews":"soon"}}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"Subscription Updated","properties":{"subscription_id":"sub_1","status":"cancelled"}}`, false},
		{r("POST", "/v1/track"), "", `{"userId":"ada","event":"Subscription Updated","properties":{"subscription_id":"sub_3","renews":"never"}}`, false},
		{r("GET", "/v1/objects/subscription/records/{id}"), "sub_1", "", false},
		{r("PUT", "/v1/segments/{id}"), "renewing", `{"condition":{"object":"subscription","where":{"status":"active"},"renews":{"within_next":"7d"}}}`, false},
		{r("DELETE", "/v1/objects/subscription/records/{id}"), "sub_1", "", false},
		{r("PUT", "/v1/templates/{id}"), "hello", `{"subject":"Hi {{field \"first_name\" \"there\"}}","text":"Hello","html":"<p>Hello</p>"}`, false},
		{r("GET", "/v1/templates/{id}"), "hello", "", false},
		{r("POST", "/v1/templates/{id}/preview"), "hello", `{"userId":"ada","event":{"event":"cart_abandoned","properties":{"cart_id":"k1"}}}`, false},
		{r("POST", "/v1/templates/{id}/preview"), "hello", `{"userId":"ada","template":{"subject":"s","html":"<p>{{range recommend 3}}{{money .Price .Currency}}{{end}}{{url "javascript:x"}}</p>"}}`, false},
		{r("PUT", "/v1/templates/{id}"), "cart", `{"subject":"Cart","text":"{{range .Cart.Lines}}{{.Name}} {{money .Total $.Cart.Currency}}{{end}}{{date .Trigger.At}}"}`, false},
		{r("GET", "/v1/t/o/{id}"), "eyJrIjoibyJ9.AAAA", "", false},
		{r("GET", "/v1/t/c/{id}"), "not-a-token", "", false},
		{r("POST", "/v1/t/u/{id}"), "x.y", "", false},
		{r("OPTIONS", "/v1/track"), "", "", false},
		{r("GET", "/healthz"), "", "", false},
		{r("GET", "/v1/journeys?limit=2&after={id}"), "a", "", false},
		{r("GET", "/v1/journeys/{id}/versions"), "welcome", "", false},
		{r("GET", "/v1/journeys/{id}/versions/1"), "welcome", "", false},
		{r("POST", "/v1/journeys/{id}/simulate"), "welcome", `{"contact":{"id":"sim","email":"sim@example.com","traits":{"first_name":"Sim"},"tags":["vip"]},"events":[{"at":"1h","event":"Clicked"}]}`, false},
		{r("POST", "/v1/journeys/{id}/simulate"), "welcome", `{"events":[{"at":"soon","event":""}]}`, false},
		{r("POST", "/v1/journeys/{id}/simulate"), "welcome", `{"contact":{"nope":1}}`, false},
		{r("POST", "/v1/journeys/{id}/migrate"), "welcome", `{"from":1,"to":2,"map":{"2-wait":"2-wait"},"dry_run":true}`, false},
		{r("POST", "/v1/journeys/{id}/migrate"), "welcome", `{"from":1,"to":2,"map":{"nope":"2-wait"},"default":"zzz"}`, false},
		{r("POST", "/v1/journeys/{id}/migrate"), "welcome", `{"from":1,"to":2,"map":{"2-wait":"2-wait"}}`, false},
		{r("GET", "/v1/journeys/{id}/migrations/1"), "welcome", "", false},
		{r("POST", "/v1/journeys/{id}/migrations/1/resume"), "welcome", "", false},
		{r("GET", "/v1/journeys/{id}/stats"), "welcome", "", false},
		{r("GET", "/v1/journeys/{id}/split-tests"), "welcome", "", false},
		{r("GET", "/v1/contacts?after={id}"), "0", "", false},
		{r("POST", "/v1/contacts/{id}/tags"), "ada", `{"tag":"vip"}`, false},
		{r("POST", "/v1/contacts/{id}/tags"), "ada", `{"tag":"` + long + `"}`, false},
		{r("DELETE", "/v1/contacts/{id}/tags/vip"), "ada", "", false},
		{r("PATCH", "/v1/contacts/{id}/fields"), "ada", `{"fields":{"plan":"pro","coupon":null}}`, false},
		{r("PATCH", "/v1/contacts/{id}/fields"), "ada", `{"fields":{"note":"` + long + `"}}`, false},
		{r("POST", "/v1/contacts/{id}/subscriptions"), "ada", `{"list":"newsletter","subscribed":true}`, false},
		{r("GET", "/v1/segments?after={id}"), "", "", false},
		{r("GET", "/v1/templates?after={id}"), "", "", false},
		{r("GET", "/v1/pipelines?after={id}"), "", "", false},
		{r("GET", "/v1/openapi.json"), "", "", false},
		{r("GET", "/ui/journeys"), "", "", false},
		{r("GET", "/ui/journeys/{id}"), "welcome", "", false},
		{r("GET", "/ui/contacts/{id}"), "ada", "", false},
		{r("POST", "/v1/journeys/{id}/archive"), "welcome", `{"cancel_runs":true}`, false},
		{r("POST", "/v1/journeys/{id}/unarchive"), "welcome", "", false},
		{r("GET", "/v1/contacts/{id}/export"), "ada", "", false},
		{r("DELETE", "/v1/contacts/{id}"), "bo", `{"requestedBy":"ticket-1","reason":"asked"}`, false},
		{r("GET", "/v1/schema/journey.json"), "", "", false},
	}
}

// fuzzTarget is the starter's handler over a fresh schema.
type fuzzTarget struct {
	db      *pgxpool.Pool
	handler http.Handler
}

func newFuzzTarget(tb testing.TB) *fuzzTarget {
	tb.Helper()
	pool := pgtest.Pool(tb)
	if err := crm.Migrate(context.Background(), pool); err != nil {
		tb.Fatal(err)
	}
	api := &starter.API{DB: pool, WriteKeys: []string{writeKey}, AdminKey: adminKey, TrackingKey: []byte("tk"),
		SourceSecrets: map[string]string{"shop": "s3cret"}, Logger: discard(), Temporal: noRuns{}, Scheduler: &fakeScheduler{}}
	return &fuzzTarget{db: pool, handler: starter.WithQueryTimeout(api.Handler(), 2*time.Second)}
}

// rows counts the rows a request could write, in one round trip.
func (f *fuzzTarget) rows(tb testing.TB) string {
	tb.Helper()
	var out string
	err := f.db.QueryRow(context.Background(), `SELECT concat_ws(',',
		(SELECT count(*) FROM events), (SELECT count(*) FROM contacts), (SELECT count(*) FROM contact_tags),
		(SELECT count(*) FROM contact_aliases), (SELECT count(*) FROM journey_versions), (SELECT count(*) FROM segments),
		(SELECT count(*) FROM email_templates), (SELECT count(*) FROM forms), (SELECT count(*) FROM field_definitions),
		(SELECT count(*) FROM stages), (SELECT count(*) FROM pipelines), (SELECT count(*) FROM deals), (SELECT count(*) FROM scoring_rules),
		(SELECT count(*) FROM score_changes), (SELECT count(*) FROM orders), (SELECT count(*) FROM carts),
		(SELECT count(*) FROM list_subscriptions), (SELECT count(*) FROM campaigns), (SELECT count(*) FROM campaign_firings),
		(SELECT count(*) FROM object_types), (SELECT count(*) FROM object_records), (SELECT count(*) FROM object_sources),
		(SELECT count(*) FROM journey_migrations), (SELECT count(*) FROM action_ledger),
		(SELECT count(*) FROM journeys WHERE archived_at IS NOT NULL))`).Scan(&out)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// check sends one request and holds the invariants.
func (f *fuzzTarget) check(t testing.TB, s fuzzSeed) {
	route := fuzzRoutes[s.route%len(fuzzRoutes)]
	path := strings.ReplaceAll(route.path, "{id}", url.PathEscape(s.id))
	body := []byte(s.body)
	if s.gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = b.Bytes()
	}
	req := httptest.NewRequest(route.method, "http://cairn.test"+path, bytes.NewReader(body))
	req.RemoteAddr = "192.0.2.1:1234"
	switch {
	case strings.HasPrefix(s.body, "{") || s.body == "":
		req.Header.Set("Content-Type", "application/json")
	case strings.Contains(s.body, "="):
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	default:
		req.Header.Set("Content-Type", "application/yaml")
	}
	if s.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set(starter.IdempotencyHeader, "k-"+fmt.Sprint(len(s.body)))
	switch route.auth {
	case "write":
		req.SetBasicAuth(writeKey, "")
	case "admin":
		req.Header.Set("Authorization", "Bearer "+adminKey)
	case "signed":
		ts := fmt.Sprint(time.Now().Unix())
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write([]byte(ts + "." + string(body)))
		req.Header.Set(starter.SignatureHeader, "t="+ts+",v1="+hex.EncodeToString(m.Sum(nil)))
	}
	before := f.rows(t)
	rec := httptest.NewRecorder()
	began := time.Now()
	f.handler.ServeHTTP(rec, req)
	if took := time.Since(began); took > 8*time.Second {
		t.Fatalf("%s %s (%d-byte body) took %s to answer %d", route.method, path, len(s.body), took, rec.Code)
	}
	if rec.Code >= 500 {
		t.Fatalf("%s %s (%d-byte body) answered %d: %s", route.method, path, len(s.body), rec.Code, truncate(rec.Body.String()))
	}
	if rec.Code >= 400 {
		if after := f.rows(t); after != before {
			t.Fatalf("%s %s was refused (%d) but rows changed: %s → %s", route.method, path, rec.Code, before, after)
		}
	}
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

func FuzzHandlers(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(uint8(s.route), s.id, []byte(s.body), s.gzip)
	}
	target := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, route uint8, id string, body []byte, gz bool) {
		target.check(t, fuzzSeed{route: int(route), id: id, body: string(body), gzip: gz})
	})
}

// TestMutatedRequestsNeverCause5xxNorPartialRows runs every seed and a fixed-seed set of
// mutations of them (bytes flipped, NULs and invalid UTF-8 put in, cut short, repeated,
// sent to another route) through the handler.
func TestMutatedRequestsNeverCause5xxNorPartialRows(t *testing.T) {
	t.Parallel()
	target := newFuzzTarget(t)
	seeds := fuzzSeeds()
	for _, s := range seeds {
		target.check(t, s)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	inserts := []string{"\x00", "\xff", "\xc3", `"`, "{", "}", "[", "]", ",", ":", "\\u0000", "-1", "1e999", "null", strings.Repeat("y", 300)}
	deadline := time.Now().Add(20 * time.Second)
	n := 0
	for ; n < 3000 && time.Now().Before(deadline); n++ {
		s := seeds[rng.IntN(len(seeds))]
		if len(s.body) > 4096 {
			continue // the large seeds ran above; mutating them costs seconds each
		}
		b := []byte(s.body)
		switch rng.IntN(6) {
		case 0: // flip a byte
			if len(b) > 0 {
				b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
			}
		case 1: // insert something hostile
			i := rng.IntN(len(b) + 1)
			b = append(b[:i:i], append([]byte(inserts[rng.IntN(len(inserts))]), b[i:]...)...)
		case 2: // cut short
			b = b[:rng.IntN(len(b)+1)]
		case 3: // repeat a slice
			if len(b) > 2 {
				i, j := rng.IntN(len(b)), rng.IntN(len(b))
				if i > j {
					i, j = j, i
				}
				b = append(b[:j:j], append(append([]byte{}, b[i:j]...), b[j:]...)...)
			}
		case 4: // another route
			s.route = rng.IntN(len(fuzzRoutes))
		case 5: // a hostile id
			s.id = inserts[rng.IntN(len(inserts))] + s.id
		}
		s.body = string(b)
		target.check(t, s)
	}
	t.Logf("%d seeds and %d mutations: no 5xx, no partial rows", len(seeds), n)
}

// noRuns is a Temporal with no runs: visibility lists and counts none, and any run asked for
// is not found. The fuzz suite's handler reaches every route with it, Temporal's answers
// included.
type noRuns struct{ client.Client }

func (noRuns) ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	return &workflowservice.ListWorkflowExecutionsResponse{}, nil
}

func (noRuns) CountWorkflow(context.Context, *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	return &workflowservice.CountWorkflowExecutionsResponse{}, nil
}

func (noRuns) TerminateWorkflow(context.Context, string, string, string, ...any) error {
	return serviceerror.NewNotFound("no such run")
}

func (noRuns) CancelWorkflow(context.Context, string, string) error {
	return serviceerror.NewNotFound("no such run")
}

func (noRuns) SignalWorkflow(context.Context, string, string, string, any) error {
	return serviceerror.NewNotFound("no such run")
}

func (noRuns) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, nil
}
