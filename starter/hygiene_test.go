package starter_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/starter"
)

// errorLog records what the starter logs at error level: every 500 is logged, so an empty
// log means no request failed inside.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	l.msgs = append(l.msgs, msg)
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) empty(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Empty(t, l.msgs, "no request reached a failing query")
}

// setupLogged is setup with the error log kept.
func setupLogged(t *testing.T) (*fixture, *errorLog) {
	log := &errorLog{}
	f := setupWith(t, func(a *starter.API) { a.Logger = slog.New(log) })
	return f, log
}

type refusal struct {
	name, method, path, contentType, body string
	admin                                 bool
	status                                int
	path_                                 string // the error's path
}

func (f *fixture) refuse(t *testing.T, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		req := f.request(t, c.method, c.path, strings.NewReader(c.body))
		if c.contentType != "" {
			req.Header.Set("Content-Type", c.contentType)
		}
		if c.admin {
			req.Header.Set("Authorization", "Bearer "+adminKey)
		} else {
			req.SetBasicAuth(writeKey, "")
		}
		r, _ := f.send(t, req)
		require.Equal(t, c.status, r.Status, "%s: %v", c.name, r.Body)
		require.Equal(t, c.path_, errorOf(t, r)["path"], c.name)
	}
}

func TestNULCharactersAndInvalidUTF8AreRefusedWithTheirPathBeforeAnyQuery(t *testing.T) {
	t.Parallel()
	f, log := setupLogged(t)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/forms/news", `{"fields": {"E-mail": "email"}}`, bearer(adminKey)).Status)
	const form = "application/x-www-form-urlencoded"
	f.refuse(t, []refusal{
		{"NUL in the event name", "POST", "/v1/track", "", `{"userId":"ada","event":"Sign\u0000ed Up"}`, false, 400, "event"},
		{"NUL in userId", "POST", "/v1/identify", "", `{"userId":"a\u0000","traits":{}}`, false, 400, "userId"},
		{"NUL in a property", "POST", "/v1/track", "", `{"userId":"ada","event":"x","properties":{"name":"\u0000"}}`, false, 400, "properties.name"},
		{"NUL deep in a list", "POST", "/v1/track", "", `{"userId":"ada","event":"x","properties":{"items":[{"sku":"a"},{"sku":"b\u0000"}]}}`, false, 400, "properties.items[1].sku"},
		{"NUL in a property key", "POST", "/v1/track", "", `{"userId":"ada","event":"x","properties":{"na\u0000me":1}}`, false, 400, `properties."na\x00me"`},
		{"NUL in a trait", "POST", "/v1/identify", "", `{"userId":"ada","traits":{"address":{"city":"Le\u0000ds"}}}`, false, 400, "traits.address.city"},
		{"NUL in a batch", "POST", "/v1/batch", "", `{"batch":[{"type":"track","userId":"ada","event":"ok"},{"type":"track","userId":"ada","event":"x\u0000"}]}`, false, 400, "batch[1].event"},
		{"NUL in context", "POST", "/v1/page", "", `{"userId":"ada","context":{"page":{"title":"\u0000"}}}`, false, 400, "context.page.title"},
		{"invalid UTF-8 in a property", "POST", "/v1/track", "", "{\"userId\":\"ada\",\"event\":\"x\",\"properties\":{\"name\":\"\xff\xfe\"}}", false, 400, "properties.name"},
		{"invalid UTF-8 in a key", "POST", "/v1/track", "", "{\"userId\":\"ada\",\"event\":\"x\",\"properties\":{\"\xc3\":1}}", false, 400, "properties.\uFFFD"},
		{"invalid UTF-8 in the event", "POST", "/v1/t", "text/plain", "{\"userId\":\"ada\",\"event\":\"caf\xe9\"}", false, 400, "event"},
		{"%00 in a form field", "POST", "/v1/forms/news", form, "E-mail=ada%00%40example.com", false, 400, "E-mail"},
		{"%FF in a form field", "POST", "/v1/forms/news", form, "E-mail=ada%40example.com&Name=%FF%FE", false, 400, "Name"},
		{"NUL in a JSON form", "POST", "/v1/forms/news", "application/json", `{"E-mail":"ada@example.com","Note":"\u0000"}`, false, 400, "Note"},
		{"%00 in the query", "POST", "/v1/forms/news?writeKey=" + writeKey + "&utm=%00", form, "E-mail=ada%40example.com", false, 400, "url query utm"},
		{"%00 in a path id", "POST", "/v1/forms/ne%00ws", form, "E-mail=ada%40example.com", false, 400, "url path id"},
		{"%FF%FE as a contact id", "GET", "/v1/contacts/%FF%FE", "", "", true, 400, "url path id"},
		{"%00 in a journey id", "PUT", "/v1/journeys/a%00", "", "id: a\ntrigger: {event: x}\nsteps: [end]", true, 400, "url path id"},
		{"NUL in a deal", "PUT", "/v1/deals/d%00", "", `{"userId":"ada","pipeline":"p","stage":"s"}`, false, 400, "url path id"},
		{"NUL in a deal's stage", "PUT", "/v1/deals/d-1", "", `{"userId":"ada","pipeline":"p","stage":"s\u0000"}`, false, 400, "stage"},
		{"YAML \\0 escape in a segment", "PUT", "/v1/segments/s", "", "name: \"vip\\0\"\ncondition: {tag: vip}", true, 400, "name"},
		{"YAML \\x00 escape deep in a journey", "PUT", "/v1/journeys/j", "", "id: j\ntrigger: {event: x}\nsteps:\n  - add_tag: \"a\\x00\"", true, 400, "steps[0].add_tag"},
		{"NUL in a scoring rule", "PUT", "/v1/scoring-rules/r", "", `{"event":"x","points":1,"where":{"plan\u0000":"pro"}}`, true, 400, `where."plan\x00"`},
		{"NUL in a start", "POST", "/v1/journeys/j/start", "", `{"userId":"a\u0000"}`, true, 400, "userId"},
		// The body is walked as its handler will decode it, whatever it claims to be.
		{"JSON sent as a form to a Segment call", "POST", "/v1/track", form, `{"userId":"ada","event":"x\u0000"}`, false, 400, "event"},
		{"a form post without a Content-Type", "POST", "/v1/forms/news", "", "E-mail=ada%40example.com&Name=a%00", false, 400, "Name"},
		{"a YAML flow mapping that is not JSON", "PUT", "/v1/segments/s", "application/json", `{name: "vip\0", condition: {tag: vip}}`, true, 400, "name"},
	})
	log.empty(t)
	require.Zero(t, f.count(t, "events"))
	require.Zero(t, f.count(t, "contacts"))
	require.Zero(t, f.count(t, "journeys"))
	require.Zero(t, f.count(t, "segments"))
	require.Zero(t, f.count(t, "deals"))
}

func TestOverLongIdentifiersAre422WithTheirPathBeforeAnyQuery(t *testing.T) {
	t.Parallel()
	f, log := setupLogged(t)
	require.Equal(t, 201, f.do(t, "PUT", "/v1/forms/news", `{"fields": {"E-mail": "email"}}`, bearer(adminKey)).Status)
	long := strings.Repeat("x", 256)
	huge := strings.Repeat("é", 1500) // 3,000 bytes: past PostgreSQL's btree row limit
	digits := strings.Repeat("7", 300)
	const form = "application/x-www-form-urlencoded"
	f.refuse(t, []refusal{
		{"userId", "POST", "/v1/track", "", `{"userId":"` + long + `","event":"x"}`, false, 422, "userId"},
		{"numeric userId", "POST", "/v1/track", "", `{"userId":` + digits + `,"event":"x"}`, false, 422, "userId"},
		{"anonymousId", "POST", "/v1/track", "", `{"anonymousId":"` + huge + `","event":"x"}`, false, 422, "anonymousId"},
		{"previousId", "POST", "/v1/alias", "", `{"userId":"ada","previousId":"` + long + `"}`, false, 422, "previousId"},
		{"groupId", "POST", "/v1/group", "", `{"userId":"ada","groupId":"` + long + `"}`, false, 422, "groupId"},
		{"event", "POST", "/v1/track", "", `{"userId":"ada","event":"` + huge + `"}`, false, 422, "event"},
		{"messageId", "POST", "/v1/track", "", `{"userId":"ada","event":"x","messageId":"` + strings.Repeat("m", 1001) + `"}`, false, 422, "messageId"},
		{"property key", "POST", "/v1/track", "", `{"userId":"ada","event":"x","properties":{"` + long + `":1}}`, false, 422, "properties.\"" + strings.Repeat("x", 64) + "\"…"},
		{"trait key", "POST", "/v1/identify", "", `{"userId":"ada","traits":{"` + huge + `":1}}`, false, 422, "traits." + `"` + strings.Repeat("é", 32) + `"…`},
		{"trait value", "POST", "/v1/identify", "", `{"userId":"ada","traits":{"bio":"` + strings.Repeat("b", 2001) + `"}}`, false, 422, "traits.bio"},
		{"context trait value", "POST", "/v1/track", "", `{"userId":"ada","event":"x","context":{"traits":{"plan":"` + huge + `"}}}`, false, 422, "context.traits.plan"},
		{"order id", "POST", "/v1/track", "", `{"userId":"ada","event":"Order Completed","properties":{"order_id":"` + long + `"}}`, false, 422, "properties.order_id"},
		{"country from context", "POST", "/v1/track", "", `{"userId":"ada","event":"x","context":{"location":{"country":"` + huge + `"}}}`, false, 422, "context.location.country"},
		{"userId in a batch", "POST", "/v1/batch", "", `{"batch":[{"type":"identify","userId":"ada"},{"type":"identify","userId":"` + long + `"}]}`, false, 422, "batch[1].userId"},
		{"path id", "POST", "/v1/forms/" + long, form, "E-mail=ada%40example.com", false, 422, "url path id"},
		{"form identity", "POST", "/v1/forms/news", form, "E-mail=" + long + "%40example.com", false, 422, "email"},
		{"form messageId", "POST", "/v1/forms/news", form, "E-mail=ada%40example.com&messageId=" + strings.Repeat("m", 1001), false, 422, "messageId"},
		{"deal id", "PUT", "/v1/deals/" + long, "", `{"userId":"ada","pipeline":"p","stage":"s"}`, false, 422, "url path id"},
		{"deal pipeline", "PUT", "/v1/deals/d-1", "", `{"userId":"ada","pipeline":"` + huge + `","stage":"s"}`, false, 422, "pipeline"},
		{"journey id", "PUT", "/v1/journeys/" + long, "", "id: x\ntrigger: {event: x}\nsteps: [end]", true, 422, "url path id"},
		{"contact id", "GET", "/v1/contacts/" + huge, "", "", true, 422, "url path id"},
		{"segment id", "GET", "/v1/segments/" + long + "/contacts", "", "", true, 422, "url path id"},
		{"template id", "PUT", "/v1/templates/" + long, "", `{"subject":"s","text":"t"}`, true, 422, "url path id"},
		{"field name", "PUT", "/v1/fields/" + long, "", `{"type":"text"}`, true, 422, "url path name"},
		{"pipeline id", "PUT", "/v1/pipelines/" + long, "", `{"name":"Sales"}`, true, 422, "url path id"},
		{"stage id", "PUT", "/v1/pipelines/sales", "", `{"name":"Sales","stages":[{"id":"lead"},{"id":"` + huge + `"}]}`, true, 422, "stages[1].id"},
		{"form tag", "PUT", "/v1/forms/f", "", `{"fields":{},"tags":["lead","` + long + `"]}`, true, 422, "tags[1]"},
		{"form list", "PUT", "/v1/forms/f", "", `{"fields":{},"list":"` + long + `"}`, true, 422, "list"},
		{"score name", "PUT", "/v1/scoring-rules/r", "", `{"event":"x","points":1,"score":"` + huge + `"}`, true, 422, "score"},
		{"segment name in YAML", "PUT", "/v1/segments/s", "", "name: " + long + "\ncondition: {tag: vip}", true, 422, "name"},
		{"a journey's tag", "PUT", "/v1/journeys/j", "", "id: j\ntrigger: {event: x}\nsteps:\n  - if: {tag: a}\n    then: [{add_tag: " + strings.Repeat("t", 2001) + "}]", true, 422, "steps[0].then[0].add_tag"},
		{"start userId", "POST", "/v1/journeys/j/start", "", `{"userId":"` + huge + `"}`, true, 422, "userId"},
		// Go's JSON decoder fills userId from USERID (and from "uſerId", with a long s).
		{"userId in capitals", "POST", "/v1/track", "", `{"USERID":"` + long + `","event":"x"}`, false, 422, "USERID"},
		{"userId with a long s", "POST", "/v1/track", "", `{"uſerId":"` + long + `","event":"x"}`, false, 422, "uſerId"},
	})
	log.empty(t)
	require.Zero(t, f.count(t, "events"))
	require.Zero(t, f.count(t, "contacts"))
	require.Zero(t, f.count(t, "pipelines"))
	require.Zero(t, f.count(t, "journeys"))
	require.Zero(t, f.count(t, "forms WHERE id <> 'news'"))

	// At the limits, everything is stored.
	id := strings.Repeat("u", 255)
	r := f.do(t, "POST", "/v1/track", `{"userId":"`+id+`","event":"`+strings.Repeat("e", 255)+`","messageId":"`+strings.Repeat("m", 1000)+`",
		"properties":{"`+strings.Repeat("k", 255)+`":1},"context":{"traits":{"bio":"`+strings.Repeat("b", 2000)+`"}}}`, basic(writeKey))
	require.Equal(t, 200, r.Status, "%v", r.Body)
	r = f.do(t, "GET", "/v1/contacts/"+id, "", bearer(adminKey))
	require.Equal(t, 200, r.Status)
	log.empty(t)
}

func TestDeeplyNestedBodiesAreRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	deep := `{"userId":"ada","event":"x","properties":{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`
	r := f.do(t, "POST", "/v1/track", deep, basic(writeKey))
	require.Equal(t, 400, r.Status)
	require.Contains(t, errorOf(t, r)["message"], "deeper than 64")
	ok := `{"userId":"ada","event":"x","properties":{"a":` + strings.Repeat("[", 60) + strings.Repeat("]", 60) + `}}`
	require.Equal(t, 200, f.do(t, "POST", "/v1/track", ok, basic(writeKey)).Status)
	require.Equal(t, http.StatusOK, f.do(t, "POST", "/v1/track", `{"userId":"ada","event":"Sign\u00e9d"}`, basic(writeKey)).Status, "escapes of real characters are fine")
}
