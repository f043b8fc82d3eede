package starter

import (
	"fmt"
	"strings"

	"github.com/cairnhq/cairn/journey"
)

// A journey drawn as a flow, for the journey page's SVG: each step a box, a step's paths (an
// if's then and else, a wait_until's, a branch's and a split's) side by side under it and
// joined again below, goals beside the steps they jump to, gotos back to their step.

// Box geometry, in SVG units.
const (
	boxW      = 220.0
	boxH      = 58.0
	stepGap   = 30.0 // between one step and the next
	labelGap  = 34.0 // from a step to its paths (their labels sit there)
	joinGap   = 22.0 // from the longest path to where paths join
	colGap    = 26.0
	emptyH    = 22.0 // an empty path
	margin    = 24.0
	sideLane  = 70.0 // left of the steps: goto arcs
	goalLaneW = 280.0
)

// flowBox is a drawn step.
type flowBox struct {
	X, Y     float64
	ID, Kind string
	Summary  string
	Count    int64
	Link     string
	// Waits marks steps where contacts spend time.
	Waits bool
}

// flowLine is a drawn connection: Path is an SVG path's d attribute.
type flowLine struct {
	Path   string
	Dashed bool
	Class  string
}

// flowLabel is a text in the drawing.
type flowLabel struct {
	X, Y  float64
	Text  string
	Class string
}

// flowGoal is a goal, drawn at the height of its target step.
type flowGoal struct {
	X, Y    float64
	ID      string
	When    string
	Then    string
	OnReach string
	Count   int64
}

// flowDrawing is everything the SVG draws.
type flowDrawing struct {
	W, H   float64
	Boxes  []flowBox
	Lines  []flowLine
	Labels []flowLabel
	Goals  []flowGoal
	// Exit is the journey's exit condition, drawn above the first step.
	Exit string
}

type flowPoint struct{ X, Y float64 }

type flowLayout struct {
	d      *flowDrawing
	counts map[string]int64
	link   func(step string) string
	at     map[string]flowBox // step id → its box, for goal and goto lines
}

// drawFlow lays out the journey's steps; counts are the contacts at each step now, and link
// opens a step's contacts in Temporal UI.
func drawFlow(j *journey.Journey, counts map[string]int64, link func(string) string) *flowDrawing {
	l := &flowLayout{d: &flowDrawing{}, counts: counts, link: link, at: map[string]flowBox{}}
	w, h := l.measureList(j.Steps)
	top := margin
	if j.Exit != nil {
		l.d.Exit = "exit: " + j.Exit.String()
		top += 28
	}
	left := margin + sideLane
	l.d.Labels = append(l.d.Labels, flowLabel{X: left + w/2, Y: top - 8, Text: "trigger: " + triggersText(j), Class: "trigger"})
	l.placeList(j.Steps, left, top+10, w)
	goalX := left + w + 40
	for i, g := range j.Goals {
		target, ok := l.at[g.Then]
		if !ok {
			continue
		}
		y := target.Y + float64(i%2)*6
		onReach := g.OnReach
		if onReach == "" {
			onReach = journey.OnReachContinue
		}
		l.d.Goals = append(l.d.Goals, flowGoal{X: goalX, Y: y, ID: g.ID, When: g.When.String(), Then: g.Then, OnReach: onReach})
		l.d.Lines = append(l.d.Lines, flowLine{Dashed: true, Class: "goal",
			Path: fmt.Sprintf("M %.0f %.0f C %.0f %.0f, %.0f %.0f, %.0f %.0f", goalX, y+boxH/2, goalX-20, y+boxH/2,
				target.X+boxW+20, target.Y+boxH/2, target.X+boxW, target.Y+boxH/2)})
	}
	l.d.W = left + w + margin
	if len(l.d.Goals) > 0 {
		l.d.W = goalX + goalLaneW + margin
	}
	l.d.H = top + 10 + h + margin + 20
	l.gotos(j.Steps)
	return l.d
}

func triggersText(j *journey.Journey) string {
	parts := make([]string, len(j.Triggers))
	for i, t := range j.Triggers {
		parts[i] = t.String()
	}
	return strings.Join(parts, " or ")
}

// flowPaths are the paths drawn under a step, with their labels.
func flowPaths(s *journey.Step) (labels []string, paths [][]journey.Step) {
	switch s.Kind() {
	case journey.KindIf:
		return []string{"then", "else"}, [][]journey.Step{s.Then, s.Else}
	case journey.KindWaitUntil:
		if len(s.Then) > 0 || len(s.Else) > 0 {
			return []string{"met", "timed out"}, [][]journey.Step{s.Then, s.Else}
		}
	case journey.KindBranch:
		for _, p := range s.Branch {
			label := "else"
			if p.When != nil {
				label = "when " + p.When.String()
			}
			labels, paths = append(labels, label), append(paths, p.Steps)
		}
	case journey.KindSplit:
		for _, p := range s.Split {
			labels, paths = append(labels, fmt.Sprintf("%d%%", p.Percent)), append(paths, p.Steps)
		}
	}
	return labels, paths
}

func (l *flowLayout) measureList(steps []journey.Step) (w, h float64) {
	if len(steps) == 0 {
		return boxW * 0.6, emptyH
	}
	for i := range steps {
		sw, sh := l.measureStep(&steps[i])
		w = max(w, sw)
		h += sh
	}
	return w, h + stepGap*float64(len(steps)-1)
}

func (l *flowLayout) measureStep(s *journey.Step) (w, h float64) {
	_, paths := flowPaths(s)
	if len(paths) == 0 {
		return boxW, boxH
	}
	var cols, tallest float64
	for _, p := range paths {
		cw, ch := l.measureList(p)
		cols += cw
		tallest = max(tallest, ch)
	}
	cols += colGap * float64(len(paths)-1)
	return max(boxW, cols), boxH + labelGap + tallest + joinGap
}

// placeList places steps from top y within a column of width w starting at x; it returns
// where the column ends (the point the next step connects from).
func (l *flowLayout) placeList(steps []journey.Step, x, y, w float64) flowPoint {
	cx := x + w/2
	if len(steps) == 0 {
		l.d.Lines = append(l.d.Lines, flowLine{Path: fmt.Sprintf("M %.0f %.0f L %.0f %.0f", cx, y, cx, y+emptyH), Class: "edge"})
		return flowPoint{cx, y + emptyH}
	}
	var prev *flowPoint
	for i := range steps {
		if prev != nil {
			l.d.Lines = append(l.d.Lines, flowLine{Path: fmt.Sprintf("M %.0f %.0f L %.0f %.0f", prev.X, prev.Y, cx, y), Class: "edge arrow"})
		}
		end := l.placeStep(&steps[i], cx, y)
		_, sh := l.measureStep(&steps[i])
		y += sh + stepGap
		prev = &end
	}
	return *prev
}

// placeStep draws a step's box centred on cx at y, and its paths under it; it returns where
// the step ends.
func (l *flowLayout) placeStep(s *journey.Step, cx, y float64) flowPoint {
	b := flowBox{X: cx - boxW/2, Y: y, ID: s.ID, Kind: s.Kind(), Summary: s.Summary(), Count: l.counts[s.ID], Link: l.link(s.ID), Waits: s.IsWait()}
	l.d.Boxes = append(l.d.Boxes, b)
	l.at[s.ID] = b
	labels, paths := flowPaths(s)
	if len(paths) == 0 {
		return flowPoint{cx, y + boxH}
	}
	_, total := l.measureStep(s)
	var cols float64
	widths := make([]float64, len(paths))
	for i, p := range paths {
		widths[i], _ = l.measureList(p)
		cols += widths[i]
	}
	cols += colGap * float64(len(paths)-1)
	x := cx - cols/2
	join := flowPoint{cx, y + total}
	for i, p := range paths {
		col := x + widths[i]/2
		top := y + boxH + labelGap
		l.d.Lines = append(l.d.Lines, flowLine{Class: "edge arrow",
			Path: fmt.Sprintf("M %.0f %.0f C %.0f %.0f, %.0f %.0f, %.0f %.0f", cx, y+boxH, cx, y+boxH+labelGap/2, col, y+boxH+labelGap/2, col, top)})
		l.d.Labels = append(l.d.Labels, flowLabel{X: col + 4, Y: y + boxH + labelGap - 12, Text: shorten(labels[i], 34), Class: "path"})
		end := l.placeList(p, x, top, widths[i])
		l.d.Lines = append(l.d.Lines, flowLine{Class: "edge",
			Path: fmt.Sprintf("M %.0f %.0f C %.0f %.0f, %.0f %.0f, %.0f %.0f", end.X, end.Y, end.X, join.Y-joinGap/3, cx, join.Y-joinGap/2, cx, join.Y)})
		x += widths[i] + colGap
	}
	return join
}

// gotos draws each goto's jump back (or ahead) to its step, on the left.
func (l *flowLayout) gotos(steps []journey.Step) {
	var walk func([]journey.Step)
	walk = func(list []journey.Step) {
		for i := range list {
			s := &list[i]
			if s.Goto != nil {
				from, okFrom := l.at[s.ID]
				to, okTo := l.at[s.Goto.Step]
				if okFrom && okTo {
					lane := margin + 10
					l.d.Lines = append(l.d.Lines, flowLine{Dashed: true, Class: "goto arrow",
						Path: fmt.Sprintf("M %.0f %.0f C %.0f %.0f, %.0f %.0f, %.0f %.0f", from.X, from.Y+boxH/2, lane, from.Y+boxH/2,
							lane, to.Y+boxH/2, to.X, to.Y+boxH/2)})
				}
			}
			_, paths := flowPaths(s)
			for _, p := range paths {
				walk(p)
			}
		}
	}
	walk(steps)
}

// shorten cuts a text to n characters (runes), marking the cut.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
