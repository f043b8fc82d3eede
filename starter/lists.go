package starter

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/cairnhq/cairn/crm"
)

// listJourneys serves GET /v1/journeys: journeys by id, each with its newest version.
func (a *API) listJourneys(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := pageOf(r)
	if err != nil {
		return err
	}
	js, err := crm.ListJourneys(r.Context(), a.DB, after, limit)
	if err != nil {
		return err
	}
	writePage(w, "journeys", js, limit, func(j crm.JourneySummary) string { return j.ID })
	return nil
}

// listVersions serves GET /v1/journeys/{id}/versions: the versions, oldest first.
func (a *API) listVersions(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := pageOf(r)
	if err != nil {
		return err
	}
	n, err := afterNumber(after)
	if err != nil {
		return err
	}
	vs, err := crm.JourneyVersions(r.Context(), a.DB, r.PathValue("id"), int(n), limit)
	if err != nil {
		return err
	}
	writePage(w, "versions", vs, limit, func(v crm.VersionSummary) string { return strconv.Itoa(v.Version) })
	return nil
}

// getVersion serves GET /v1/journeys/{id}/versions/{version}: one version with its definition.
func (a *API) getVersion(w http.ResponseWriter, r *http.Request) error {
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 1 {
		return badRequest("url path version", "a version is a whole number from 1")
	}
	jv, err := crm.JourneyByID(r.Context(), a.DB, r.PathValue("id"), v)
	if err != nil {
		return err
	}
	if jv.Version != v {
		return fmt.Errorf("journey %q has no version %d: %w", jv.JourneyID, v, crm.ErrNotFound)
	}
	writeJSON(w, http.StatusOK, jv)
	return nil
}

// listContacts serves GET /v1/contacts: contacts by Cairn's number.
func (a *API) listContacts(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := pageOf(r)
	if err != nil {
		return err
	}
	n, err := afterNumber(after)
	if err != nil {
		return err
	}
	cs, err := crm.ListContacts(r.Context(), a.DB, n, limit)
	if err != nil {
		return err
	}
	writePage(w, "contacts", cs, limit, func(c crm.ContactSummary) string { return strconv.FormatInt(c.ID, 10) })
	return nil
}

// listSegments serves GET /v1/segments: segments by id, with their conditions (no counts:
// GET /v1/segments/{id} counts one).
func (a *API) listSegments(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := pageOf(r)
	if err != nil {
		return err
	}
	ss, err := crm.ListSegments(r.Context(), a.DB, after, limit)
	if err != nil {
		return err
	}
	writePage(w, "segments", ss, limit, func(s crm.Segment) string { return s.ID })
	return nil
}

// listTemplates serves GET /v1/templates: templates by id, with their subjects.
func (a *API) listTemplates(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := pageOf(r)
	if err != nil {
		return err
	}
	ts, err := crm.ListTemplates(r.Context(), a.DB, after, limit)
	if err != nil {
		return err
	}
	writePage(w, "templates", ts, limit, func(t crm.TemplateSummary) string { return t.ID })
	return nil
}

// listPipelines serves GET /v1/pipelines: pipelines by id, with their stages.
func (a *API) listPipelines(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := pageOf(r)
	if err != nil {
		return err
	}
	ps, err := crm.ListPipelines(r.Context(), a.DB, after, limit)
	if err != nil {
		return err
	}
	writePage(w, "pipelines", ps, limit, func(p crm.Pipeline) string { return p.ID })
	return nil
}
