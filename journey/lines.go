package journey

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// lineIndex maps every path of a document (id, steps[2].wait, goals[0].then) to the line it
// starts on, so a problem found after decoding (a goto to a missing step, a template that does
// not exist) points at its line like one found while reading.
func lineIndex(root *yaml.Node) map[string]int {
	idx := map[string]int{}
	var visit func(n *yaml.Node, path string, depth int)
	visit = func(n *yaml.Node, path string, depth int) {
		if depth > 2*MaxStepDepth+2*MaxConditionDepth+8 || len(idx) > 4*MaxSteps*16 {
			return // past the limits the decoder refuses anyway
		}
		idx[path] = n.Line
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := join(path, k.Value)
				idx[p] = k.Line
				visit(n.Content[i+1], p, depth+1)
				idx[p] = k.Line // the key's line, not its value's
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				visit(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		}
	}
	visit(root, "", 0)
	return idx
}

// lineOf is the line of path, or of the nearest enclosing path the document has.
func lineOf(idx map[string]int, path string) int {
	for {
		if l, ok := idx[path]; ok {
			return l
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut <= 0 {
			return 0
		}
		path = path[:cut]
	}
}

// WithLines gives each problem without a line the line of its path in doc (problems found by
// checks that read the decoded journey, such as a template that does not exist).
func WithLines(doc []byte, probs []Problem) []Problem {
	root, err := parse(doc, "")
	if err != nil {
		return probs
	}
	return withLines(lineIndex(root), probs)
}

func withLines(idx map[string]int, probs []Problem) []Problem {
	for i := range probs {
		if probs[i].Line == 0 && probs[i].Path != "" {
			probs[i].Line = lineOf(idx, probs[i].Path)
		}
	}
	return probs
}

// within reports whether path is p or lies under it (steps[1].wait is under steps[1]).
func within(path, p string) bool {
	if p == "" || path == p {
		return true
	}
	return strings.HasPrefix(path, p) && (path[len(p)] == '.' || path[len(p)] == '[')
}

// mergeProblems adds the problems validation found to those decoding found, leaving out any
// about a part of the document decoding already refused (its step has no kind because its
// kind did not read; its goal has no target because the target was not a string).
func mergeProblems(decoded, validated []Problem) []Problem {
	out := decoded
	for _, v := range validated {
		overlaps := false
		for _, d := range decoded {
			if d.Path != "" && (within(v.Path, d.Path) || within(d.Path, v.Path)) {
				overlaps = true
				break
			}
		}
		if !overlaps {
			out = append(out, v)
		}
	}
	return out
}
