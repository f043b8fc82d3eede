// Package catalog reads journeys as code: a folder of journey documents (*.yaml, *.yml,
// *.json) with their email templates in templates/ (<id>.yaml). `cairn journeys validate` and
// `apply`, and `cairn dev`, read folders through it, so all three find the same problems.
package catalog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
)

// Journey is one journey document as read.
type Journey struct {
	File     string
	Document []byte
	// Journey is nil when the document has problems.
	Journey *journey.Journey
}

// Problem is something wrong in a file, at a line when known.
type Problem struct {
	File string
	journey.Problem
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return loc + ": " + p.Problem.String()
}

// Catalog is what a set of files and folders holds.
type Catalog struct {
	Journeys  []Journey
	Templates []Template
	Problems  []Problem
	// Unchecked lists the journey files whose templates could not be checked: no templates
	// folder beside them.
	Unchecked []string
}

// Template is an email template with the file it came from.
type Template struct {
	File string
	email.Template
}

// Read reads journeys from paths, each a journey file or a folder of them. A journey's
// templates are looked up in templates (when not empty), else in the templates folder beside
// it; every problem of every file is reported, each with its line: what the journey language
// refuses, a template file that does not render, a template a journey sends that does not
// exist, two files with one journey id.
func Read(templates string, paths ...string) (*Catalog, error) {
	c := &Catalog{}
	byDir := map[string][]string{} // templates folder → journey files using it
	var order []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		dir := filepath.Dir(p)
		if fi.IsDir() {
			if files, err = Files(p); err != nil {
				return nil, err
			}
			dir = p
		}
		tdir := templates
		if tdir == "" {
			tdir = filepath.Join(dir, "templates")
		}
		if _, seen := byDir[tdir]; !seen {
			order = append(order, tdir)
		}
		byDir[tdir] = append(byDir[tdir], files...)
	}
	ids := map[string]string{}
	for _, tdir := range order {
		known, checked := map[string]bool{}, true
		if _, err := os.Stat(tdir); errors.Is(err, fs.ErrNotExist) {
			checked = false
		} else {
			files, err := filepath.Glob(filepath.Join(tdir, "*.yaml"))
			if err != nil {
				return nil, err
			}
			sort.Strings(files)
			for _, f := range files {
				t, err := email.ReadTemplateFile(f)
				known[t.ID] = true
				if err != nil {
					c.Problems = append(c.Problems, Problem{File: f, Problem: journey.Problem{Message: err.Error()}})
					continue
				}
				c.Templates = append(c.Templates, Template{File: f, Template: t})
			}
		}
		for _, f := range byDir[tdir] {
			doc, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			j, err := journey.Read(doc)
			var ve *journey.ValidationError
			var probs []journey.Problem
			switch {
			case errors.As(err, &ve):
				probs = ve.Problems
			case err != nil:
				return nil, err
			}
			if j == nil {
				c.Problems = append(c.Problems, problems(f, probs)...)
				c.Journeys = append(c.Journeys, Journey{File: f, Document: doc})
				continue
			}
			var more []journey.Problem
			if first, dup := ids[j.ID]; dup && j.ID != "" {
				more = append(more, journey.Problem{Path: "id", Message: fmt.Sprintf("%q is the id of %s too", j.ID, first)})
			}
			ids[j.ID] = f
			if !checked {
				c.Unchecked = append(c.Unchecked, f)
			}
			for _, ref := range j.TemplateRefs() {
				if checked && !known[ref.Template] {
					more = append(more, journey.Problem{Path: ref.Path,
						Message: fmt.Sprintf("template %q does not exist (no %s)", ref.Template, filepath.Join(tdir, ref.Template+".yaml"))})
				}
			}
			probs = append(probs, journey.WithLines(doc, more)...)
			c.Problems = append(c.Problems, problems(f, probs)...)
			if len(probs) > 0 {
				j = nil
			}
			c.Journeys = append(c.Journeys, Journey{File: f, Document: doc, Journey: j})
		}
	}
	return c, nil
}

// Files lists a folder's journey documents, in name order.
func Files(dir string) ([]string, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files, nil
}

func problems(file string, probs []journey.Problem) []Problem {
	out := make([]Problem, len(probs))
	for i, p := range probs {
		out[i] = Problem{File: file, Problem: p}
	}
	return out
}
