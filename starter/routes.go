package starter

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/cairnhq/cairn/crm"
)

// router is the API's ServeMux, remembering every pattern it was given: the OpenAPI document
// and the fuzz suite are checked against the routes it holds.
type router struct {
	*http.ServeMux
	patterns []string
}

func newRouter() *router { return &router{ServeMux: http.NewServeMux()} }

func (r *router) Handle(pattern string, h http.Handler) {
	r.patterns = append(r.patterns, pattern)
	r.ServeMux.Handle(pattern, h)
}

func (r *router) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	r.Handle(pattern, http.HandlerFunc(h))
}

// Routes lists the patterns Handler registered ("GET /v1/journeys/{id}"), sorted.
func (a *API) Routes() []string {
	out := append([]string(nil), a.routes...)
	sort.Strings(out)
	return out
}

// operations registers the endpoints that operate journeys and the CRM beyond ingestion and
// definitions: lists, simulation, migration, stats, archiving, contact operations, the
// OpenAPI document and the pages.
func (a *API) operations(mux *router) {
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	mux.Handle("GET /v1/journeys", a.admin(listByID(a, "journeys", crm.ListJourneys, func(j crm.JourneySummary) string { return j.ID }), jsonBody))
	mux.Handle("GET /v1/journeys/{id}/versions", a.admin(a.listVersions, jsonBody))
	mux.Handle("GET /v1/journeys/{id}/versions/{version}", a.admin(a.getVersion, jsonBody))
	mux.Handle("POST /v1/journeys/{id}/archive", a.admin(a.archiveJourney(true), jsonBody))
	mux.Handle("POST /v1/journeys/{id}/unarchive", a.admin(a.archiveJourney(false), jsonBody))
	mux.Handle("POST /v1/journeys/{id}/simulate", a.admin(a.simulate, jsonBody, lim("contact.id", maxID), lim("contact.email", maxID),
		lim("contact.tags[]", maxID), lim("contact.lists[]", maxID), lim("events[].event", maxID), lim("**", maxFieldValue)))
	mux.Handle("POST /v1/journeys/{id}/migrate", a.admin(a.migrate, jsonBody, lim("map.*", maxID), lim("default", maxID)))
	mux.Handle("GET /v1/journeys/{id}/migrations/{migration}", a.admin(a.getMigration, jsonBody))
	mux.Handle("POST /v1/journeys/{id}/migrations/{migration}/resume", a.admin(a.resumeMigration, jsonBody))
	mux.Handle("GET /v1/journeys/{id}/stats", a.admin(a.journeyStats, jsonBody))
	mux.Handle("GET /v1/journeys/{id}/split-tests", a.admin(a.splitTests, jsonBody))
	mux.Handle("GET /v1/contacts", a.admin(a.listContacts, jsonBody))
	mux.Handle("POST /v1/contacts/{id}/tags", a.admin(a.contactAddTag, jsonBody, lim("tag", maxID)))
	mux.Handle("DELETE /v1/contacts/{id}/tags/{tag}", a.admin(a.contactRemoveTag, jsonBody))
	mux.Handle("PATCH /v1/contacts/{id}/fields", a.admin(a.contactSetFields, jsonBody, lim("**", maxFieldValue)))
	mux.Handle("POST /v1/contacts/{id}/subscriptions", a.admin(a.contactSubscribe, jsonBody, lim("list", maxID)))
	mux.Handle("GET /v1/segments", a.admin(listByID(a, "segments", crm.ListSegments, func(s crm.Segment) string { return s.ID }), jsonBody))
	mux.Handle("GET /v1/templates", a.admin(listByID(a, "templates", crm.ListTemplates, func(t crm.TemplateSummary) string { return t.ID }), jsonBody))
	mux.Handle("GET /v1/pipelines", a.admin(listByID(a, "pipelines", crm.ListPipelines, func(p crm.Pipeline) string { return p.ID }), jsonBody))
	mux.Handle("GET /ui/journeys", a.page(a.journeysPage))
	mux.Handle("GET /ui/journeys/{id}", a.page(a.journeyPage))
	mux.Handle("GET /ui/contacts/{id}", a.page(a.contactPage))
}

// pageOf reads a list's ?limit= (1–1000, default 100) and ?after= (the next value of the
// previous page).
func pageOf(r *http.Request) (limit int, after string, err error) {
	limit = 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return 0, "", badRequest("limit", "limit must be a whole number from 1 to 1000")
		}
	}
	return limit, r.URL.Query().Get("after"), nil
}

// afterNumber reads ?after= as a number (contact ids, versions).
func afterNumber(after string) (int64, error) {
	if after == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(after, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("after", "after must be the next value of the previous page")
	}
	return n, nil
}

// writePage answers a list: the items under name, and next (the key to pass as after) when
// the page is full.
func writePage[T any](w http.ResponseWriter, name string, items []T, limit int, key func(T) string) {
	if items == nil {
		items = []T{}
	}
	out := map[string]any{name: items}
	if len(items) == limit {
		out["next"] = key(items[len(items)-1])
	}
	writeJSON(w, http.StatusOK, out)
}
