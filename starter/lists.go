package starter

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/cairnhq/cairn/crm"
)

// listByID serves a list of things kept by id (GET /v1/journeys, /v1/segments, /v1/templates,
// /v1/pipelines): a page of them after the id in after, under name in the reply.
func listByID[T any](a *API, name string, list func(ctx context.Context, db crm.DB, after string, limit int) ([]T, error), id func(T) string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		limit, after, err := pageOf(r)
		if err != nil {
			return err
		}
		items, err := list(r.Context(), a.DB, after, limit)
		if err != nil {
			return err
		}
		writePage(w, name, items, limit, id)
		return nil
	}
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
