package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/catalog"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal"
	"github.com/cairnhq/cairn/simulation"
)

func journeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "journeys", Short: "Work with journey documents: check, apply, simulate"}
	cmd.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of journey documents (for editor completion)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(journey.Schema)
			return err
		},
	}, validateCmd(), applyCmd(), simulateCmd())
	return cmd
}

// readCatalog reads paths and prints every problem; it fails when there is one.
func readCatalog(cmd *cobra.Command, templates string, paths []string) (*catalog.Catalog, error) {
	c, err := catalog.Read(templates, paths...)
	if err != nil {
		return nil, err
	}
	for _, f := range c.Unchecked {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: templates not checked: no templates folder beside it (--templates DIR names one)\n", f)
	}
	for _, p := range c.Problems {
		fmt.Fprintln(cmd.ErrOrStderr(), p)
	}
	if n := len(c.Problems); n > 0 {
		return c, fmt.Errorf("%d problems", n)
	}
	return c, nil
}

func validateCmd() *cobra.Command {
	var templates string
	cmd := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check journey documents (files, or folders with their templates/) and list every problem with its line",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			c, err := readCatalog(cmd, templates, paths)
			if c != nil {
				for _, j := range c.Journeys {
					if j.Journey != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (journey %s, %d steps)\n", j.File, j.Journey.ID, len(j.Journey.StepIDs()))
					}
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&templates, "templates", "", "folder of email templates (default: templates/ beside each journey)")
	return cmd
}

// starterFlags are where a running starter is and its admin key.
type starterFlags struct {
	url, key string
}

func (f *starterFlags) add(cmd *cobra.Command) {
	def := os.Getenv("CAIRN_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(&f.url, "url", def, "the starter's URL (CAIRN_URL)")
	cmd.Flags().StringVar(&f.key, "key", "", "the admin key (default: CAIRN_ADMIN_KEY)")
}

// put sends a document to the starter and reads its JSON reply.
func (f *starterFlags) put(ctx context.Context, path, contentType string, doc []byte) (int, map[string]any, error) {
	key := f.key
	if key == "" {
		key = os.Getenv("CAIRN_ADMIN_KEY")
	}
	if key == "" {
		return 0, nil, errors.New("no admin key: set CAIRN_ADMIN_KEY or give --key")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(f.url, "/")+path, bytes.NewReader(doc))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("PUT %s: HTTP %d: %.200s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, body, nil
}

// refusal says what the starter refused, problem by problem.
func refusal(file string, status int, body map[string]any) error {
	e, _ := body["error"].(map[string]any)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: refused (HTTP %d): %v", file, status, e["message"])
	if probs, ok := e["problems"].([]any); ok {
		b.Reset()
		fmt.Fprintf(&b, "%s: refused (HTTP %d):", file, status)
		for _, p := range probs {
			p, _ := p.(map[string]any)
			fmt.Fprintf(&b, "\n  %s:%v: %v: %v", file, p["line"], p["path"], p["message"])
		}
	}
	return errors.New(b.String())
}

func applyCmd() *cobra.Command {
	var templates string
	var to starterFlags
	cmd := &cobra.Command{
		Use:   "apply DIR...",
		Short: "Check, then apply journeys and their templates to a running starter (templates first); nothing is applied if anything is wrong",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			c, err := readCatalog(cmd, templates, paths)
			if err != nil {
				return fmt.Errorf("nothing applied: %w", err)
			}
			out := cmd.OutOrStdout()
			for _, t := range c.Templates {
				doc, err := os.ReadFile(t.File)
				if err != nil {
					return err
				}
				status, body, err := to.put(cmd.Context(), "/v1/templates/"+url.PathEscape(t.ID), "application/yaml", doc)
				if err != nil {
					return err
				}
				if status >= 300 {
					return refusal(t.File, status, body)
				}
				what := "saved"
				if status == http.StatusCreated {
					what = "created"
				}
				fmt.Fprintf(out, "template %-24s %s\n", t.ID, what)
			}
			for _, j := range c.Journeys {
				contentType := "application/yaml"
				if filepath.Ext(j.File) == ".json" {
					contentType = "application/json"
				}
				status, body, err := to.put(cmd.Context(), "/v1/journeys/"+url.PathEscape(j.Journey.ID), contentType, j.Document)
				if err != nil {
					return err
				}
				if status >= 300 {
					return refusal(j.File, status, body)
				}
				what := fmt.Sprintf("unchanged (version %v)", body["version"])
				if status == http.StatusCreated {
					what = fmt.Sprintf("version %v", body["version"])
				}
				fmt.Fprintf(out, "journey  %-24s %s\n", j.Journey.ID, what)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&templates, "templates", "", "folder of email templates (default: templates/ beside each journey)")
	to.add(cmd)
	return cmd
}

func simulateCmd() *cobra.Command {
	var contactFile, eventsFile, templates, start string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "simulate FILE",
		Short: "Run a journey for a made-up contact in virtual time, against a scratch CRM: nothing is sent, nothing stored (DATABASE_URL, or a local PostgreSQL)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := readCatalog(cmd, templates, args)
			if err != nil {
				return err
			}
			in := simulation.Input{Journey: *c.Journeys[0].Journey}
			for _, t := range c.Templates {
				in.Templates = append(in.Templates, t.Template)
			}
			if contactFile != "" {
				if err := readYAML(contactFile, &in.Contact); err != nil {
					return err
				}
			}
			if eventsFile != "" {
				if err := readYAML(eventsFile, &in.Events); err != nil {
					return err
				}
			}
			if start != "" {
				if in.Start, err = time.Parse(time.RFC3339, start); err != nil {
					return fmt.Errorf("--start: %w", err)
				}
			}
			dbURL := os.Getenv("DATABASE_URL")
			if dbURL == "" {
				pg, err := pglocal.StartTemp(cmd.Context(), nil)
				if err != nil {
					return fmt.Errorf("a simulation needs PostgreSQL: %w", err)
				}
				defer pg.Stop()
				dbURL = pg.URL
			}
			res, err := simulation.RunOn(cmd.Context(), dbURL, in)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printSimulation(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&contactFile, "contact", "", "the contact, JSON or YAML: {id, email, traits, tags, lists, scores}")
	f.StringVar(&eventsFile, "events", "", "what happens to it, YAML or JSON: [{at: 2d, event: Order Completed, properties: {…}}, {at: 3d, event: identify, traits: {…}}]")
	f.StringVar(&templates, "templates", "", "folder of email templates (default: templates/ beside the journey)")
	f.StringVar(&start, "start", "", "when the contact enters, RFC 3339 (default: now)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// readYAML reads a YAML (or JSON) file into v as the API reads the same JSON, refusing
// unknown keys.
func readYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if doc == nil {
		return nil
	}
	asJSON, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(asJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// printSimulation prints a run's path as a timeline, with the messages each step would send.
func printSimulation(w io.Writer, r *simulation.Result) {
	fmt.Fprintf(w, "%s v%d for %s, entering %s\n", r.Journey, r.Version, r.Contact, r.Start.UTC().Format("Mon 2006-01-02 15:04 MST"))
	if !r.Entered {
		fmt.Fprintf(w, "  not entered: %s\n", r.Error)
		return
	}
	for _, v := range r.Path {
		fmt.Fprintf(w, "  %-9s %-24s %-36s %s\n", "+"+since(r.Start, v.EnteredAt), v.Step, v.Summary, v.Outcome)
		for _, m := range r.Messages {
			if m.Step != v.Step || m.At.Before(v.EnteredAt) || v.LeftAt != nil && m.At.After(*v.LeftAt) {
				continue
			}
			switch m.Channel {
			case "email":
				fmt.Fprintf(w, "            %s to %s: %q\n", m.Channel, m.To, m.Subject)
			case "audience":
				fmt.Fprintf(w, "            %s %s: %s\n", m.Channel, m.Audience, m.Change)
			default:
				fmt.Fprintf(w, "            %s to %s: %q\n", m.Channel, m.To, m.Text)
			}
		}
	}
	goals := "none"
	if len(r.GoalsMet) > 0 {
		goals = strings.Join(r.GoalsMet, ", ")
	}
	fmt.Fprintf(w, "%s at %s after %s of virtual time; %d messages; goals met: %s\n", r.Status, r.Step, since(r.Start, r.EndedAt), len(r.Messages), goals)
	if r.Error != "" {
		fmt.Fprintf(w, "  %s\n", r.Error)
	}
	fmt.Fprintf(w, "simulated in %s\n", r.Took.Round(time.Millisecond))
}

// since writes how long after start t is, in the journey language's units.
func since(start, t time.Time) string {
	return journey.Duration{D: t.Sub(start).Round(time.Second)}.String()
}
