package starter

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/cairnhq/cairn/crm"
)

// The pages: server-rendered HTML with the journey drawn in SVG, for an operator's browser.
// They take the admin key as a bearer token or as the password of HTTP Basic auth, which
// browsers ask for themselves (any user name).

//go:embed pages.html
var pageFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"add":   func(a, b float64) float64 { return a + b },
	"pct":   func(x float64) float64 { return 100 * x },
	"short": shorten,
	"lines": func(s string, n int) []string {
		// a summary wrapped on two lines of at most n characters
		r := []rune(s)
		if len(r) <= n {
			return []string{s}
		}
		cut := n
		for i := n; i > n/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		return []string{string(r[:cut]), shorten(strings.TrimSpace(string(r[cut:])), n)}
	},
}).ParseFS(pageFiles, "pages.html"))

// page guards a page with the admin key, then serves it; a failure is a small HTML page.
func (a *API) page(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := a.clientAddr(r)
		if wait, blocked := a.authFailures.blocked(addr); blocked {
			tooManyFailures(w, wait)
			return
		}
		token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !bearer {
			_, token, _ = r.BasicAuth()
		}
		if token == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="cairn admin", charset="UTF-8"`)
			a.pageError(w, r, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
				Message: "the admin key is needed: give it as the password (any user name), or as a bearer token"})
			return
		}
		if a.AdminKey == "" || !anyKey([]string{a.AdminKey}, token) {
			a.authFailures.failed(addr)
			w.Header().Set("WWW-Authenticate", `Basic realm="cairn admin", charset="UTF-8"`)
			a.pageError(w, r, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "that is not the admin key"})
			return
		}
		if err := checkURL(r); err != nil {
			writeError(w, err)
			return
		}
		if err := h(w, r); err != nil {
			var ae *apiError
			switch {
			case errors.Is(err, crm.ErrNotFound):
				ae = &apiError{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
			case errors.As(err, &ae):
			default:
				a.Logger.Error("page failed", "path", r.URL.Path, "error", err)
				ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; see the starter's log"}
			}
			a.pageError(w, r, ae)
		}
	})
}

// pageError answers a browser (Accept: text/html) with a small page, anything else with the
// API's JSON error.
func (a *API) pageError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		writeError(w, e)
		return
	}
	a.render(w, e.Status, "error", map[string]any{"Title": http.StatusText(e.Status), "Message": e.Message})
}

// render executes a page into a buffer first, so a failure never sends half a page.
func (a *API) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		a.Logger.Error("render page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	w.WriteHeader(status)
	_, _ = b.WriteTo(w)
}

// journeysPage serves GET /ui/journeys: every journey, with a link to its page.
func (a *API) journeysPage(w http.ResponseWriter, r *http.Request) error {
	js, err := crm.ListJourneys(r.Context(), a.DB, "", 1000)
	if err != nil {
		return err
	}
	a.render(w, http.StatusOK, "journeys", map[string]any{"Title": "Journeys", "Journeys": js})
	return nil
}

// journeyPage serves GET /ui/journeys/{id}: the journey's newest version drawn as a flow,
// each step with the contacts there now and a link to them in Temporal UI, and its counts:
// goals, emails, sends the send policy held back, split tests (looked at as the API does).
func (a *API) journeyPage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	v, err := crm.JourneyByID(r.Context(), a.DB, id, 0)
	if err != nil {
		return err
	}
	st, err := a.stats(r.Context(), id)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for _, c := range st.Now {
		counts[c.Step] += c.Contacts
	}
	d := drawFlow(&v.Definition, counts, func(step string) string { return a.stepLink(id, step) })
	for i := range d.Goals {
		d.Goals[i].Count = st.Goals[d.Goals[i].ID]
	}
	elsewhere := []StepCount{} // contacts at steps the newest version does not have
	for _, c := range st.Now {
		if c.Contacts > 0 && v.Definition.Step(c.Step) == nil {
			elsewhere = append(elsewhere, c)
		}
	}
	var splits []*crm.SplitResult
	for _, s := range v.Definition.SplitTests() {
		res, err := crm.SplitResults(r.Context(), a.DB, id, s.ID, *s.SplitTest, a.Now())
		if err != nil {
			return err
		}
		splits = append(splits, res)
	}
	a.render(w, http.StatusOK, "journey", map[string]any{"Title": "Journey " + id, "Journey": v, "Stats": st, "Flow": d,
		"Elsewhere": elsewhere, "AllRuns": a.stepLink(id, ""), "SplitTests": splits})
	return nil
}

// contactPage serves GET /ui/contacts/{id}: the contact, its tags, segments and scores, and
// its runs with links to each run's journey and to the run in Temporal UI.
func (a *API) contactPage(w http.ResponseWriter, r *http.Request) error {
	p, err := a.profile(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	a.render(w, http.StatusOK, "contact", map[string]any{"Title": "Contact " + p.Contact.ExternalID, "Contact": p.Contact,
		"Segments": p.Segments, "Unanswered": p.Unanswered, "Scores": p.Scores, "Runs": p.Runs, "RunsNote": p.RunsNote})
	return nil
}
