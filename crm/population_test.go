package crm_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// model is a generated contact as the test knows it, independently of the database.
type model struct {
	id     int64
	tags   map[string]bool
	traits map[string]any
	score  float64
	events []modelEvent
	// country is the profile column as the documented rules give it: the country trait,
	// else traits.address.country, else the last country the sender observed.
	country string
}

type modelEvent struct {
	name     string
	currency string
	at       time.Time
}

var numeric = regexp.MustCompile(`^\s*-?[0-9]+(\.[0-9]+)?\s*$`)

// num reads a trait as a number the way Cairn promises: JSON numbers and numeric strings.
func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case string:
		if numeric.MatchString(x) {
			f, _ := strconv.ParseFloat(strings.TrimSpace(x), 64)
			return f, true
		}
	}
	return 0, false
}

// eval is the reference semantics: every leaf is true or false, a missing field is false.
func eval(c journey.Condition, m model, now time.Time) bool {
	switch c.Kind() {
	case "all":
		for _, s := range c.All {
			if !eval(s, m, now) {
				return false
			}
		}
		return true
	case "any":
		for _, s := range c.Any {
			if eval(s, m, now) {
				return true
			}
		}
		return false
	case "not":
		return !eval(*c.Not, m, now)
	case "tag":
		return m.tags[c.Tag]
	case "score":
		s := c.Score
		return (s.GTE == nil || m.score >= *s.GTE) && (s.GT == nil || m.score > *s.GT) &&
			(s.LTE == nil || m.score <= *s.LTE) && (s.LT == nil || m.score < *s.LT)
	case "field":
		f := c.Field
		if f.Name == "country" {
			switch f.Op {
			case journey.OpEquals:
				return m.country != "" && strings.EqualFold(m.country, f.Value.(string))
			case journey.OpNotEquals:
				return !(m.country != "" && strings.EqualFold(m.country, f.Value.(string)))
			case journey.OpIsSet:
				return m.country != ""
			case journey.OpIsBlank:
				return m.country == ""
			}
		}
		v, has := m.traits[f.Name]
		switch f.Op {
		case journey.OpEquals:
			s, ok := v.(string)
			return has && ok && s == f.Value
		case journey.OpNotEquals:
			s, ok := v.(string)
			return !(has && ok && s == f.Value)
		case journey.OpIsSet:
			return has && fmt.Sprint(v) != ""
		case journey.OpIsBlank:
			return !has || fmt.Sprint(v) == ""
		case journey.OpGT, journey.OpLT, journey.OpBetween:
			n, ok := num(v)
			if !has || !ok {
				return false
			}
			switch f.Op {
			case journey.OpGT:
				return n > f.Value.(float64)
			case journey.OpLT:
				return n < f.Value.(float64)
			}
			return n >= f.Range[0] && n <= f.Range[1]
		}
	case "event":
		e := c.Event
		count := 0
		for _, ev := range m.events {
			if ev.name != e.Name {
				continue
			}
			if e.Within != nil && ev.at.Before(now.Add(-e.Within.D)) {
				continue
			}
			if cur, ok := e.Where["currency"]; ok && ev.currency != cur {
				continue
			}
			count++
		}
		switch {
		case e.AtLeast != nil:
			return count >= *e.AtLeast
		case e.AtMost != nil:
			return count <= *e.AtMost
		}
		return count > 0
	}
	panic("eval: unhandled " + c.Kind())
}

// randomCondition builds a condition text from the kinds eval covers.
func randomCondition(r *rand.Rand, depth int) string {
	if depth > 0 && r.IntN(3) == 0 {
		op := []string{"all", "any"}[r.IntN(2)]
		n := 2 + r.IntN(2)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = randomCondition(r, depth-1)
		}
		return fmt.Sprintf("{%s: [%s]}", op, strings.Join(parts, ", "))
	}
	if depth > 0 && r.IntN(5) == 0 {
		return fmt.Sprintf("{not: %s}", randomCondition(r, depth-1))
	}
	switch r.IntN(8) {
	case 7:
		if r.IntN(3) == 0 {
			return fmt.Sprintf("{field: country, %s: true}", []string{"is_set", "is_blank"}[r.IntN(2)])
		}
		return fmt.Sprintf("{field: country, %s: %s}", []string{"equals", "not_equals"}[r.IntN(2)], []string{"PT", "pt", "ES", "Portugal"}[r.IntN(4)])
	case 0:
		return fmt.Sprintf("{tag: t%d}", r.IntN(4))
	case 1:
		return fmt.Sprintf("{field: plan, %s: %s}", []string{"equals", "not_equals"}[r.IntN(2)], []string{"pro", "free", "team"}[r.IntN(3)])
	case 2:
		return fmt.Sprintf("{field: %s, %s: true}", []string{"plan", "age"}[r.IntN(2)], []string{"is_set", "is_blank"}[r.IntN(2)])
	case 3:
		switch r.IntN(3) {
		case 0:
			return fmt.Sprintf("{field: age, gt: %d}", 20+r.IntN(40))
		case 1:
			return fmt.Sprintf("{field: age, lt: %d}", 20+r.IntN(40))
		}
		lo := 20 + r.IntN(30)
		return fmt.Sprintf("{field: age, between: [%d, %d]}", lo, lo+r.IntN(20))
	case 4:
		return fmt.Sprintf("{score: {gte: %d}}", r.IntN(100))
	case 5:
		return fmt.Sprintf("{score: {gt: %d, lt: %d}}", r.IntN(50), 50+r.IntN(50))
	}
	s := fmt.Sprintf("event: %s", []string{"Order Completed", "Page Viewed"}[r.IntN(2)])
	if r.IntN(2) == 0 {
		s += fmt.Sprintf(", within: %dd", 1+r.IntN(45))
	}
	if r.IntN(3) == 0 {
		s += ", where: {currency: " + []string{"EUR", "USD"}[r.IntN(2)] + "}"
	}
	switch r.IntN(3) {
	case 0:
		s += fmt.Sprintf(", at_least: %d", 1+r.IntN(3))
	case 1:
		s += fmt.Sprintf(", at_most: %d", r.IntN(3))
	}
	return "{" + s + "}"
}

// TestConditionsAgreeWithAnIndependentEvaluatorOnAGeneratedPopulation compares the SQL the
// compiler writes with a small evaluator written from the documented semantics, over random
// contacts (missing fields, non-numeric values, window edges) and random conditions.
func TestConditionsAgreeWithAnIndependentEvaluatorOnAGeneratedPopulation(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	r := rand.New(rand.NewPCG(7, 11))
	now := time.Now().UTC().Truncate(time.Second)
	var people []model
	for i := 0; i < 150; i++ {
		m := model{tags: map[string]bool{}, traits: map[string]any{}}
		if r.IntN(4) > 0 {
			m.traits["plan"] = []string{"pro", "free", "team", ""}[r.IntN(4)]
		}
		switch r.IntN(5) {
		case 0, 1:
			m.traits["age"] = float64(18 + r.IntN(50))
		case 2:
			m.traits["age"] = strconv.Itoa(18 + r.IntN(50)) // a numeric string
		case 3:
			m.traits["age"] = "unknown"
		}
		countries := []string{"PT", "pt", "ES", "Portugal", "", " "}
		var observed crm.Observed
		switch r.IntN(5) {
		case 0:
			m.traits["country"] = countries[r.IntN(len(countries))]
		case 1:
			m.traits["address"] = map[string]any{"country": countries[r.IntN(len(countries))]}
		case 2:
			m.traits["country"] = countries[r.IntN(len(countries))]
			m.traits["address"] = map[string]any{"country": countries[r.IntN(len(countries))]}
		}
		if r.IntN(2) == 0 {
			observed.Country = countries[r.IntN(len(countries))]
		}
		ext := fmt.Sprintf("p%d", i)
		_, _, err := s.RecordEvent(ctx, crm.EventInput{ExternalID: ext, Traits: m.traits, Name: "identify", Source: "test", OccurredAt: now.Add(-400 * 24 * time.Hour), Observed: observed})
		require.NoError(t, err)
		c, err := s.ContactByExternalID(ctx, ext)
		require.NoError(t, err)
		m.id = c.ID
		for k := 0; k < 4; k++ {
			if r.IntN(3) == 0 {
				tag := fmt.Sprintf("t%d", k)
				m.tags[tag] = true
				_, err := s.AddTag(ctx, fmt.Sprintf("k-%d-%d", i, k), m.id, tag)
				require.NoError(t, err)
			}
		}
		if r.IntN(3) > 0 {
			m.score = float64(r.IntN(100))
			require.NoError(t, s.SetScore(ctx, m.id, "", m.score))
		}
		for k := r.IntN(5); k > 0; k-- {
			ev := modelEvent{name: []string{"Order Completed", "Page Viewed"}[r.IntN(2)], currency: []string{"EUR", "USD"}[r.IntN(2)]}
			// Whole days back, some exactly on a window's edge.
			ev.at = now.Add(-time.Duration(r.IntN(50)) * 24 * time.Hour)
			var seen crm.Observed
			if r.IntN(3) == 0 {
				seen.Country = countries[r.IntN(len(countries))]
				if strings.TrimSpace(seen.Country) != "" {
					observed = seen
				}
			}
			_, _, err := s.RecordEvent(ctx, crm.EventInput{ExternalID: ext, Name: ev.name, Properties: map[string]any{"currency": ev.currency}, Source: "test", OccurredAt: ev.at, Observed: seen})
			require.NoError(t, err)
			m.events = append(m.events, ev)
		}
		m.country = strings.TrimSpace(observed.Country)
		addr, _ := m.traits["address"].(map[string]any)
		for _, v := range []any{m.traits["country"], addr["country"]} {
			if s, _ := v.(string); strings.TrimSpace(s) != "" {
				m.country = strings.TrimSpace(s)
				break
			}
		}
		people = append(people, m)
	}
	for i := 0; i < 250; i++ {
		doc := randomCondition(r, 3)
		cond, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err, doc)
		var want []int64
		for _, m := range people {
			if eval(*cond, m, now) {
				want = append(want, m.id)
			}
		}
		var got []int64
		after := int64(0)
		for {
			page, err := s.SegmentContacts(ctx, *cond, crm.Env{Now: now}, after, 1000)
			require.NoError(t, err, doc)
			for _, c := range page {
				got = append(got, c.ID)
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].ID
		}
		sort.Slice(got, func(a, b int) bool { return got[a] < got[b] })
		require.Equal(t, want, got, "condition %s", doc)
	}
}
