package starter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Length limits, in bytes, checked at the edge before any query (docs/http-api.md lists them).
// PostgreSQL refuses a btree index row over about 2,700 bytes with an error, and ids, names,
// tags, event names and dedupe keys all sit in btree indexes: these limits keep every
// identifier well under that, so a long one is a 422 naming it, never a 500.
const (
	// maxID bounds ids and names: userId, anonymousId, previousId, groupId, event names, ids
	// in the URL, tags, lists, pipelines and stages, and every key of a JSON object.
	maxID = 255
	// maxMessageID bounds messageId: it becomes a dedupe key with a source prefix and, for
	// forms, the form's id (255 + 1,000 + a few bytes stays far from the index limit), and
	// leaves room for clients that build ids from several parts.
	maxMessageID = 1000
	// maxFieldValue bounds each string of a contact's traits: a text field, once defined, is
	// a column with a btree index, and a longer value would fail every write of that contact
	// (and the field's definition itself, if the contact was stored before it).
	maxFieldValue = 2000
	// maxDepth bounds how deeply JSON and YAML bodies nest.
	maxDepth = 64
)

// limit caps the length of the strings (and numbers) found at a path pattern: segments
// separated by dots, "[]" for any index of a list, "*" for any one key or index, "**" for
// anything below.
type limit struct {
	pattern []string
	max     int
}

func lim(pattern string, max int) limit {
	var segs []string
	for _, s := range strings.Split(pattern, ".") {
		if name, ok := strings.CutSuffix(s, "[]"); ok {
			segs = append(segs, name, "[]")
			continue
		}
		segs = append(segs, s)
	}
	return limit{pattern: segs, max: max}
}

// within prefixes every pattern with prefix (a list of messages in a batch, say).
func within(prefix string, limits []limit) []limit {
	p := lim(prefix, 0).pattern
	out := make([]limit, len(limits))
	for i, l := range limits {
		out[i] = limit{pattern: append(append([]string{}, p...), l.pattern...), max: l.max}
	}
	return out
}

func (l limit) matches(path []seg) bool {
	for i, p := range l.pattern {
		if p == "**" {
			return len(path) > i
		}
		if i >= len(path) {
			return false
		}
		switch s := path[i]; {
		case p == "*":
		case p == "[]":
			if !s.isIndex {
				return false
			}
		// encoding/json matches keys to fields ignoring case ("USERID" fills userId): so do limits.
		case s.isIndex || !strings.EqualFold(s.key, p):
			return false
		}
	}
	return len(path) == len(l.pattern)
}

// segmentLimits are the limits of one Segment message (track, identify, page, screen, group,
// alias).
var segmentLimits = []limit{
	lim("userId", maxID), lim("anonymousId", maxID), lim("previousId", maxID), lim("groupId", maxID),
	lim("event", maxID), lim("name", maxID), lim("messageId", maxMessageID),
	lim("properties.order_id", maxID),
	lim("traits.**", maxFieldValue), lim("context.traits.**", maxFieldValue),
	lim("context.location.*", maxID), lim("context.device.type", maxID), lim("context.timezone", maxID),
}

// seg is one step of a path: an object key or a list index.
type seg struct {
	key     string
	index   int
	isIndex bool
}

// pathString writes a path as the error bodies name it: batch[2].properties.name.
func pathString(path []seg) string {
	var b strings.Builder
	for i, s := range path {
		if s.isIndex {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(printableKey(s.key))
	}
	return b.String()
}

// printableKey is a key as a path can show it: as is when it is plain, else quoted with Go
// escapes (a NUL shows as \x00), and cut short when long.
func printableKey(k string) string {
	plain := utf8.ValidString(k) && len(k) <= 64 && !strings.ContainsAny(k, ".[]\"")
	for _, r := range k {
		if r < 0x20 || r == 0x7f {
			plain = false
		}
	}
	if plain && k != "" {
		return k
	}
	if len(k) > 64 {
		k = k[:64]
		return strconv.Quote(k) + "…"
	}
	return strconv.Quote(k)
}

// checkText refuses what PostgreSQL cannot store in text or jsonb: NUL characters and
// invalid UTF-8.
func checkText(path, s string) error {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return badRequest(path, "%s contains a NUL character (\\u0000) at byte %d; Cairn cannot store it", pathOrBody(path), i)
	}
	if !utf8.ValidString(s) {
		return badRequest(path, "%s is not valid UTF-8", pathOrBody(path))
	}
	return nil
}

func pathOrBody(path string) string {
	if path == "" {
		return "the body"
	}
	return path
}

func tooLong(path string, n, max int) error {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: "too_long", Path: path,
		Message: fmt.Sprintf("%s is %d bytes long; at most %d are accepted", path, n, max)}
}

// checkURL checks the ids in the URL's path and its query parameters.
func checkURL(r *http.Request) error {
	for _, name := range wildcards(r.Pattern) {
		v, path := r.PathValue(name), "url path "+name
		if err := checkText(path, v); err != nil {
			return err
		}
		// A token is no identifier: its signature decides, whatever its length.
		if name != "token" && len(v) > maxID {
			return tooLong(path, len(v), maxID)
		}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("url query", "malformed query string: %s", err)
	}
	for k, vs := range q {
		if err := checkText("url query", k); err != nil {
			return err
		}
		for _, v := range vs {
			if err := checkText("url query "+k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// wildcards lists the names of a route pattern's wildcards: "PUT /v1/forms/{id}" has "id".
func wildcards(pattern string) []string {
	var names []string
	for {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(pattern[i:], '}')
		if j < 0 {
			return names
		}
		name := strings.TrimSuffix(pattern[i+1:i+j], "...")
		if name != "$" {
			names = append(names, name)
		}
		pattern = pattern[i+j+1:]
	}
}

// bodyFormat is how an endpoint's handler decodes its body; checkBody walks it the same way,
// so that what a handler decodes is what was walked.
type bodyFormat int

const (
	jsonBody bodyFormat = iota // JSON, whatever the Content-Type
	formBody                   // a form post: JSON or urlencoded by its Content-Type (formIsJSON)
	docBody                    // a YAML document (JSON being YAML): journeys, segments, templates
)

// checkBody walks a request body before any handler decodes it: every key and string (at any
// depth) must be valid UTF-8 without NUL characters, every key at most maxID bytes, values
// within limits, and nesting at most maxDepth deep. The walk is linear in the body's size,
// which readBody has already bounded. A body that does not parse is left to the handler,
// whose decoder (the same one) refuses it and says what is wrong.
func checkBody(r *http.Request, body []byte, format bodyFormat, limits []limit) error {
	if len(body) == 0 {
		return nil
	}
	switch format {
	case jsonBody:
		return checkJSON(body, limits)
	case formBody:
		if formIsJSON(r) {
			return checkJSON(body, limits)
		}
		return checkForm(body, limits)
	}
	if i := bytes.IndexByte(body, 0); i >= 0 {
		return badRequest("", "the body contains a NUL byte at byte %d", i)
	}
	if !utf8.Valid(body) {
		return badRequest("", "the body is not valid UTF-8")
	}
	return checkYAML(body, limits)
}

// formIsJSON says whether a form post's body is JSON (application/json, or text/plain as
// browser code sends JSON without a preflight) rather than urlencoded.
func formIsJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json" || mt == "text/plain"
}

// plainText is checkText's fast path: most strings are fine, and their paths never printed.
func plainText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// value checks one string or number at path.
func checkValue(path []seg, s string, limits []limit) error {
	if !plainText(s) {
		return checkText(pathString(path), s)
	}
	for _, l := range limits {
		if len(s) > l.max && l.matches(path) {
			return tooLong(pathString(path), len(s), l.max)
		}
	}
	return nil
}

func checkKey(path []seg, k string) error {
	if !plainText(k) {
		return checkText(pathString(path), k)
	}
	if len(k) > maxID {
		p := pathString(path)
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "too_long", Path: p,
			Message: fmt.Sprintf("the key %s is %d bytes long; keys may have at most %d", p, len(k), maxID)}
	}
	return nil
}

// checkJSON walks JSON tokens. Go's decoder turns invalid UTF-8 into U+FFFD silently, so each
// string's raw bytes are checked too.
func checkJSON(body []byte, limits []limit) error {
	type frame struct {
		object    bool
		expectKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []frame
	var path []seg
	prev := int64(0)
	begin := func() {
		// A value starts in the innermost container: a list counts its items.
		if n := len(stack); n > 0 && !stack[n-1].object {
			path[len(path)-1].index++
		}
	}
	end := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or malformed JSON: the handler's decoder reports it
		}
		off := dec.InputOffset()
		raw := body[prev:off]
		prev = off
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			if k, ok := tok.(string); ok {
				path[len(path)-1] = seg{key: k}
				if !utf8.Valid(raw) {
					return badRequest(pathString(path), "a key at %s is not valid UTF-8", pathString(path[:len(path)-1]))
				}
				if err := checkKey(path, k); err != nil {
					return err
				}
				stack[n-1].expectKey = false
				continue
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				begin()
				if len(stack) >= maxDepth {
					return badRequest(pathString(path), "the body nests deeper than %d levels", maxDepth)
				}
				stack = append(stack, frame{object: t == '{', expectKey: t == '{'})
				path = append(path, seg{isIndex: t == '[', index: -1})
			default:
				stack, path = stack[:len(stack)-1], path[:len(path)-1]
				end()
			}
		case string:
			begin()
			if !utf8.Valid(raw) {
				return badRequest(pathString(path), "%s is not valid UTF-8", pathOrBody(pathString(path)))
			}
			if err := checkValue(path, t, limits); err != nil {
				return err
			}
			end()
		case json.Number:
			begin()
			if err := checkValue(path, t.String(), limits); err != nil {
				return err
			}
			end()
		default:
			begin()
			end()
		}
	}
}

// checkForm checks an urlencoded body: field names are keys, their values strings.
func checkForm(body []byte, limits []limit) error {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil // the handler reports it
	}
	for k, vals := range v {
		path := []seg{{key: k}}
		if err := checkKey(path, k); err != nil {
			return err
		}
		for _, val := range vals {
			if err := checkValue(path, val, limits); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkYAML walks a YAML document's nodes: YAML's escapes ("\0", "\x00") can spell a NUL that
// the raw bytes do not show. Aliases are not followed (their anchors are walked once), so
// the walk stays linear however the document repeats itself.
func checkYAML(body []byte, limits []limit) error {
	var root yaml.Node
	if yaml.Unmarshal(body, &root) != nil {
		return nil // the handler reports it
	}
	var walk func(n *yaml.Node, path []seg) error
	walk = func(n *yaml.Node, path []seg) error {
		if len(path) > maxDepth {
			return badRequest(pathString(path), "the document nests deeper than %d levels", maxDepth)
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if err := walk(c, path); err != nil {
					return err
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				p := append(path[:len(path):len(path)], seg{key: k})
				if err := checkKey(p, k); err != nil {
					return err
				}
				if err := walk(n.Content[i+1], p); err != nil {
					return err
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if err := walk(c, append(path[:len(path):len(path)], seg{index: i, isIndex: true})); err != nil {
					return err
				}
			}
		case yaml.ScalarNode:
			return checkValue(path, n.Value, limits)
		}
		return nil
	}
	return walk(&root, nil)
}
