package journey

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Trigger says which contact event starts the journey. Documents write it with a shortcut
// ({tag_added: vip}, {page_visited: "/pricing*"}, ...); decoding turns every shortcut into
// the event it listens for plus a filter, so matching has one shape.
type Trigger struct {
	// Kind is the shortcut as written (event, tag_added, ...), for display.
	Kind string `json:"kind"`
	// Event is the event name matched: a Segment track name, or one Cairn records.
	Event string `json:"event"`
	// Where holds property values the event must contain (nested objects and lists match
	// as JSON containment).
	Where map[string]any `json:"where,omitempty"`
	// URL is a glob ("/pricing*") matched against a page event's path or url.
	URL string `json:"url,omitempty"`
	// Product matches an order's products by product_id or sku.
	Product string `json:"product,omitempty"`
	// ScoreAbove matches a score_changed event that crosses this value upwards (for
	// ScoreName, "" being the default score).
	ScoreAbove *float64 `json:"score_above,omitempty"`
	ScoreName  string   `json:"score_name,omitempty"`
	// Date is set for date_field triggers: the contact's date field reached (moved by
	// Offset, whole days), or its anniversary.
	Date *DateTrigger `json:"date,omitempty"`
}

// DateTrigger starts a journey on a date held in a contact field: on the day itself (moved
// by Offset: "-3d" is three days before) or, with Anniversary, on that day every year.
// Cairn's date scheduler checks every hour and records date_reached once per contact and day.
type DateTrigger struct {
	Field       string    `json:"field"`
	Offset      *Duration `json:"offset,omitempty"`
	Anniversary bool      `json:"anniversary,omitempty"`
}

// OffsetDays is the offset in whole days.
func (d DateTrigger) OffsetDays() int {
	if d.Offset == nil {
		return 0
	}
	return int(d.Offset.D / (24 * time.Hour))
}

// Key names the (field, offset, anniversary) rule in date_reached events, which triggers match.
func (d DateTrigger) Key() string {
	k := fmt.Sprintf("%s%+dd", d.Field, d.OffsetDays())
	if d.Anniversary {
		k += "/yearly"
	}
	return k
}

// triggerShortcuts maps each trigger kind to the event it listens for and the property its
// value filters on ("" when the value is the event name itself or needs its own matching).
var triggerShortcuts = map[string]struct{ event, prop string }{
	"event":             {"", ""},
	"tag_added":         {"tag_added", "tag"},
	"tag_removed":       {"tag_removed", "tag"},
	"list_subscribed":   {"list_subscribed", "list"},
	"form_submitted":    {"form_submitted", "form"},
	"page_visited":      {"page", ""},
	"product_purchased": {"Order Completed", ""},
	"cart_abandoned":    {"cart_abandoned", ""},
	"email_opened":      {"email_opened", "template"},
	"email_clicked":     {"email_clicked", "template"},
	"score_above":       {"score_changed", ""},
	"deal_stage":        {"deal_stage_changed", "stage"},
	"manual":            {"manual_start", ""},
	"date_field":        {"date_reached", "field"},
	"segment_entered":   {"segment_entered", "segment"},
	"object_created":    {"object_created", "object"},
	"object_changed":    {"object_changed", "object"},
}

// TriggerKinds lists the trigger shortcuts, sorted.
func TriggerKinds() []string {
	out := make([]string, 0, len(triggerShortcuts))
	for k := range triggerShortcuts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Matches reports whether an event starts the journey through this trigger.
func (t Trigger) Matches(name string, props map[string]any) bool {
	if name != t.Event || !containsAll(props, t.Where) {
		return false
	}
	if t.URL != "" {
		ok := false
		re := globRegexp(t.URL)
		for _, key := range []string{"path", "url"} {
			if v, _ := props[key].(string); v != "" && re.MatchString(v) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if t.Product != "" && !hasProduct(props, t.Product) {
		return false
	}
	if t.ScoreAbove != nil {
		if n, _ := props["name"].(string); n != t.ScoreName {
			return false
		}
		old, ok1 := props["old"].(float64)
		now, ok2 := props["new"].(float64)
		if !ok1 || !ok2 || !(old < *t.ScoreAbove && now >= *t.ScoreAbove) {
			return false
		}
	}
	return true
}

// String renders the trigger as a document would write it.
func (t Trigger) String() string {
	s := t.Kind + " " + t.Event
	switch {
	case t.URL != "":
		s = "page_visited " + t.URL
	case t.Product != "":
		s = "product_purchased " + t.Product
	case t.ScoreAbove != nil:
		s = fmt.Sprintf("score_above %v", *t.ScoreAbove)
	}
	if len(t.Where) > 0 {
		keys := make([]string, 0, len(t.Where))
		for k := range t.Where {
			keys = append(keys, fmt.Sprintf("%s=%v", k, t.Where[k]))
		}
		sort.Strings(keys)
		s += " where " + strings.Join(keys, ", ")
	}
	return s
}

// globRegexp turns a URL pattern into a regexp: * is any run of characters (slashes too, as
// a marketer writing "/pricing*" means), ? is one character, everything else is literal.
func globRegexp(glob string) *regexp.Regexp {
	q := regexp.QuoteMeta(glob)
	q = strings.ReplaceAll(q, `\*`, ".*")
	q = strings.ReplaceAll(q, `\?`, ".")
	return regexp.MustCompile("^" + q + "$")
}

func hasProduct(props map[string]any, id string) bool {
	list, _ := props["products"].([]any)
	for _, p := range list {
		m, _ := p.(map[string]any)
		if fmt.Sprint(m["product_id"]) == id || fmt.Sprint(m["sku"]) == id {
			return true
		}
	}
	return false
}

// containsAll is JSON containment: every key of want is in have with a contained value.
func containsAll(have, want map[string]any) bool {
	for k, w := range want {
		h, ok := have[k]
		if !ok || !contained(h, w) {
			return false
		}
	}
	return true
}

func contained(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		return ok && containsAll(h, w)
	case []any:
		h, ok := have.([]any)
		if !ok {
			return false
		}
		for _, we := range w {
			found := false
			for _, he := range h {
				if contained(he, we) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	case float64:
		h, ok := have.(float64)
		return ok && h == w
	case int:
		h, ok := have.(float64)
		return ok && h == float64(w)
	}
	return fmt.Sprint(have) == fmt.Sprint(want)
}
