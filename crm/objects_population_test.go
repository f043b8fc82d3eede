package crm_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

// A population of contacts with custom object records, and random object conditions checked
// three ways (members, count, one contact) against an evaluator written from the documented
// rules, independently of the SQL: as TestConditionsAgreeWithAnIndependentEvaluatorOnAGeneratedPopulation
// does for the other conditions.

// modelRecord is a record as the test knows it.
type modelRecord struct {
	typ    string
	fields map[string]any
}

const populationType = `
schema:
  type: object
  properties:
    status: {type: string}
    plan: {}
    seats: {type: number}
    renews: {type: string, format: date-time}
`

// evalValue applies a field test to a value by Cairn's field rules (see eval's field case).
func evalValue(f *journey.FieldTest, v any, has bool, now time.Time) bool {
	txt := ""
	if has {
		txt = text(v)
	}
	lower := strings.ToLower
	at := func() (time.Time, bool) {
		s, ok := v.(string)
		if !has || !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
		return t, err == nil
	}
	switch f.Op {
	case journey.OpEquals, journey.OpNotEquals:
		var eq bool
		switch want := f.Value.(type) {
		case string:
			if txt == "" {
				return false
			}
			eq = lower(txt) == lower(strings.Trim(want, " "))
		case float64:
			n, ok := num(v)
			if !has || !ok {
				return false
			}
			eq = n == want
		}
		return eq == (f.Op == journey.OpEquals)
	case journey.OpContains:
		return txt != "" && strings.Contains(lower(txt), lower(f.Value.(string)))
	case journey.OpStartsWith:
		return txt != "" && strings.HasPrefix(lower(txt), lower(f.Value.(string)))
	case journey.OpIsSet:
		return has && set(v)
	case journey.OpIsBlank:
		return !has || !set(v)
	case journey.OpGT, journey.OpLT, journey.OpGTE, journey.OpLTE, journey.OpBetween:
		n, ok := num(v)
		if !has || !ok {
			return false
		}
		switch f.Op {
		case journey.OpGT:
			return n > f.Value.(float64)
		case journey.OpLT:
			return n < f.Value.(float64)
		case journey.OpGTE:
			return n >= f.Value.(float64)
		case journey.OpLTE:
			return n <= f.Value.(float64)
		}
		return n >= f.Range[0] && n <= f.Range[1]
	case journey.OpBefore, journey.OpAfter:
		t, ok := at()
		if !ok {
			return false
		}
		d, _ := journey.ParseDate(f.Value.(string))
		if f.Op == journey.OpBefore {
			return t.Before(d)
		}
		return t.After(d)
	case journey.OpWithinLast:
		t, ok := at()
		return ok && !t.Before(now.Add(-f.Within.D)) && !t.After(now)
	case journey.OpWithinNext:
		t, ok := at()
		return ok && !t.Before(now) && !t.After(now.Add(f.Within.D))
	}
	panic("evalValue: unhandled " + f.Op)
}

// evalObjects is the reference semantics of conditions made of object tests, all, any and not.
func evalObjects(c journey.Condition, records []modelRecord, now time.Time) bool {
	switch c.Kind() {
	case "all":
		for _, s := range c.All {
			if !evalObjects(s, records, now) {
				return false
			}
		}
		return true
	case "any":
		for _, s := range c.Any {
			if evalObjects(s, records, now) {
				return true
			}
		}
		return false
	case "not":
		return !evalObjects(*c.Not, records, now)
	case "object":
		o := c.Object
		n := 0
		for _, r := range records {
			if r.typ != o.Type {
				continue
			}
			ok := true
			for k, want := range o.Where {
				if got, has := r.fields[k]; !has || got != want {
					ok = false
				}
			}
			for i := range o.Fields {
				v, has := r.fields[o.Fields[i].Name]
				ok = ok && evalValue(&o.Fields[i], v, has, now)
			}
			if ok {
				n++
			}
		}
		return counts(o.Counts(), n)
	}
	panic("evalObjects: unhandled " + c.Kind())
}

func randomObjectCondition(r *rand.Rand, depth int, now time.Time) string {
	if depth > 0 && r.IntN(3) == 0 {
		op := []string{"all", "any"}[r.IntN(2)]
		parts := make([]string, 2+r.IntN(2))
		for i := range parts {
			parts[i] = randomObjectCondition(r, depth-1, now)
		}
		return fmt.Sprintf("{%s: [%s]}", op, strings.Join(parts, ", "))
	}
	if depth > 0 && r.IntN(5) == 0 {
		return fmt.Sprintf("{not: %s}", randomObjectCondition(r, depth-1, now))
	}
	typ := []string{"subscription", "subscription", "subscription", "vehicle"}[r.IntN(4)]
	parts := []string{"object: " + typ}
	if r.IntN(3) == 0 {
		parts = append(parts, fmt.Sprintf("where: {status: %s}", []string{"active", "cancelled", "Active"}[r.IntN(3)]))
	}
	day := func() string { return now.Add(time.Duration(r.IntN(121)-60) * 24 * time.Hour).Format("2006-01-02") }
	used := map[int]bool{} // a field once per test
	for k := r.IntN(3); k > 0; k-- {
		pick := r.IntN(6)
		field := map[int]int{0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2}[pick]
		if used[field] {
			continue
		}
		used[field] = true
		switch pick {
		case 0:
			parts = append(parts, fmt.Sprintf("plan: {%s: %s}", []string{"equals", "not_equals", "contains", "starts_with"}[r.IntN(4)], []string{"pro", "PRO", "fr", "7"}[r.IntN(4)]))
		case 1:
			parts = append(parts, fmt.Sprintf("plan: {%s: true}", []string{"is_set", "is_blank"}[r.IntN(2)]))
		case 2:
			parts = append(parts, fmt.Sprintf("seats: {%s: %d}", []string{"gt", "gte", "lt", "lte", "equals", "not_equals"}[r.IntN(6)], 1+r.IntN(10)))
		case 3:
			lo := 1 + r.IntN(10)
			parts = append(parts, fmt.Sprintf("seats: {between: [%d, %d]}", lo, lo+r.IntN(5)))
		case 4:
			parts = append(parts, fmt.Sprintf("renews: {%s: %dd}", []string{"within_next", "within_last"}[r.IntN(2)], 1+r.IntN(60)))
		case 5:
			parts = append(parts, fmt.Sprintf("renews: {%s: %s}", []string{"before", "after"}[r.IntN(2)], day()))
		}
	}
	switch r.IntN(5) {
	case 0:
		parts = append(parts, fmt.Sprintf("at_least: %d", r.IntN(3)))
	case 1:
		parts = append(parts, fmt.Sprintf("at_most: %d", r.IntN(2)))
	case 2:
		parts = append(parts, fmt.Sprintf("exactly: %d", r.IntN(3)))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func TestObjectConditionsAgreeWithAnIndependentEvaluatorOnAGeneratedPopulation(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	r := rand.New(rand.NewPCG(13, 17))
	now := time.Now().UTC().Truncate(time.Hour)
	putType(t, s, "subscription", populationType)
	putType(t, s, "vehicle", populationType)
	type person struct {
		id      int64
		records []modelRecord
	}
	var people []person
	for i := range 150 {
		ext := fmt.Sprintf("o%d", i)
		p := person{id: newContact(t, ctx, s, ext, nil)}
		for k := r.IntN(4); k > 0; k-- {
			rec := modelRecord{typ: []string{"subscription", "subscription", "vehicle"}[r.IntN(3)], fields: map[string]any{}}
			if r.IntN(5) > 0 {
				rec.fields["status"] = []string{"active", "cancelled", "past_due"}[r.IntN(3)]
			}
			if r.IntN(4) > 0 {
				rec.fields["plan"] = []any{"pro", "Pro", " PRO ", "free", "", "  ", 7.0, "7", true}[r.IntN(9)]
			}
			if r.IntN(4) > 0 {
				rec.fields["seats"] = float64(1 + r.IntN(12))
			}
			if r.IntN(4) > 0 {
				rec.fields["renews"] = now.Add(time.Duration(r.IntN(121*24)-60*24) * time.Hour).Format(time.RFC3339)
			}
			// Half through the API, half as a source would (the API's replace equals a merge
			// into nothing).
			_, _, err := crm.PutRecord(ctx, s, rec.typ, fmt.Sprintf("%s-%d-%d", rec.typ, i, k), ext, rec.fields, now)
			require.NoError(t, err)
			p.records = append(p.records, rec)
		}
		people = append(people, p)
	}
	for range 300 {
		doc := randomObjectCondition(r, 3, now)
		cond, err := journey.DecodeCondition([]byte(doc))
		require.NoError(t, err, doc)
		var want []int64
		for _, p := range people {
			if evalObjects(*cond, p.records, now) {
				want = append(want, p.id)
			}
		}
		page, err := crm.SegmentContacts(ctx, s, *cond, crm.Env{Now: now}, 0, 1000)
		require.NoError(t, err, doc)
		var got []int64
		for _, c := range page {
			got = append(got, c.ID)
		}
		sort.Slice(got, func(a, b int) bool { return got[a] < got[b] })
		require.Equal(t, want, got, "condition %s", doc)
		n, err := crm.CountMatching(ctx, s, *cond, crm.Env{Now: now})
		require.NoError(t, err, doc)
		require.Equal(t, int64(len(want)), n, "count of %s", doc)
		p := people[r.IntN(len(people))]
		ok, err := crm.Matches(ctx, s, p.id, *cond, crm.Env{Now: now})
		require.NoError(t, err, doc)
		require.Equal(t, evalObjects(*cond, p.records, now), ok, "contact %d, condition %s", p.id, doc)
	}
}
