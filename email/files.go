package email

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ReadTemplateFile reads a template file: <id>.yaml holding subject, html and text (the file's
// name is the template's id). The template is checked (Check) as it is read.
func ReadTemplateFile(path string) (Template, error) {
	t := Template{ID: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	b, err := os.ReadFile(path)
	if err != nil {
		return t, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var doc struct {
		Subject string `yaml:"subject"`
		HTML    string `yaml:"html"`
		Text    string `yaml:"text"`
	}
	if err := dec.Decode(&doc); err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	t.Subject, t.HTML, t.Text = doc.Subject, doc.HTML, doc.Text
	if err := t.Check(); err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ReadTemplateDir reads every template of a folder (*.yaml), in name order; a folder that does
// not exist holds none.
func ReadTemplateDir(dir string) ([]Template, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	sort.Strings(files)
	out := make([]Template, 0, len(files))
	for _, f := range files {
		t, err := ReadTemplateFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
