package debugui

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/redact"
	"github.com/ferrydev/ferry/pipeline"
)

// The colours of the health states on the debug page. The graph sets them
// as fill attributes, so that they show without the stylesheet too.
const (
	colorHealthy  = "#2e9e44"
	colorDegraded = "#e8a200"
	colorFailing  = "#d93025"
	colorUnknown  = "#9aa0a6"
)

func healthColor(h ferry.Health) string {
	switch h {
	case ferry.Healthy:
		return colorHealthy
	case ferry.Degraded:
		return colorDegraded
	case ferry.Failing:
		return colorFailing
	}
	return colorUnknown
}

// Sizes of the graph drawing, in SVG user units (pixels at scale 1).
const (
	graphNodeW = 220
	graphNodeH = 82
	graphGapX  = 70
	graphGapY  = 22
	graphPad   = 16
)

// graphView is the component graph laid out for drawing.
type graphView struct {
	Width, Height int
	Nodes         []graphNode
	Edges         []graphEdge
}

type graphNode struct {
	X, Y, W, H int
	Name       string
	Label      string // Name, shortened to fit
	Href       string // relative to the page at the handler's root
	Kind       pipeline.Kind
	Health     string
	Fill       string
	Counters   string // live counters line
	Extra      string // drops, queue or lag, if any
	ExtraColor string
	Title      string // tooltip
}

type graphEdge struct {
	From, To string
	D        string // SVG path
}

// layoutGraph places components in columns by their distance from the
// graph's roots, the way data flows: discoverers on the left, sinks on the
// right. Inputs always precede a component in the list (the Builder hands
// out handles only for components already added), so one pass suffices.
// Within a column, components follow the mean row of their inputs, which
// keeps most edges short and uncrossed.
func layoutGraph(sts []pipeline.Status, href func(name string) string) graphView {
	layer := make(map[string]int, len(sts))
	idx := make(map[string]int, len(sts))
	for i, s := range sts {
		idx[s.Name] = i
		l := 0
		for _, in := range s.Inputs {
			if li, ok := layer[in]; ok {
				l = max(l, li+1)
			}
		}
		layer[s.Name] = l
	}
	var cols [][]int // indexes into sts, per layer
	for i, s := range sts {
		l := layer[s.Name]
		for len(cols) <= l {
			cols = append(cols, nil)
		}
		cols[l] = append(cols[l], i)
	}
	row := make(map[string]float64, len(sts))
	for _, col := range cols {
		key := make(map[int]float64, len(col))
		for order, i := range col {
			s := sts[i]
			var sum float64
			n := 0
			for _, in := range s.Inputs {
				if r, ok := row[in]; ok {
					sum += r
					n++
				}
			}
			if n > 0 {
				key[i] = sum / float64(n)
			} else {
				key[i] = float64(order)
			}
		}
		slices.SortStableFunc(col, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
		for r, i := range col {
			row[sts[i].Name] = float64(r)
		}
	}
	rows := 0
	for _, col := range cols {
		rows = max(rows, len(col))
	}
	g := graphView{
		Width:  2*graphPad + len(cols)*graphNodeW + max(len(cols)-1, 0)*graphGapX,
		Height: 2*graphPad + rows*graphNodeH + max(rows-1, 0)*graphGapY,
	}
	pos := make(map[string][2]int, len(sts))
	for c, col := range cols {
		// Centre short columns against the tallest one.
		off := (rows - len(col)) * (graphNodeH + graphGapY) / 2
		for r, i := range col {
			s := sts[i]
			x := graphPad + c*(graphNodeW+graphGapX)
			y := graphPad + off + r*(graphNodeH+graphGapY)
			pos[s.Name] = [2]int{x, y}
			g.Nodes = append(g.Nodes, nodeView(s, x, y, href(s.Name)))
		}
	}
	for _, s := range sts {
		to := pos[s.Name]
		for _, in := range s.Inputs {
			from, ok := pos[in]
			if !ok {
				continue
			}
			x1, y1 := from[0]+graphNodeW, from[1]+graphNodeH/2
			x2, y2 := to[0]-2, to[1]+graphNodeH/2
			dx := max((x2-x1)/2, 20)
			g.Edges = append(g.Edges, graphEdge{
				From: in, To: s.Name,
				D: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, x1+dx, y1, x2-dx, y2, x2, y2),
			})
		}
	}
	// Keep the drawing order stable: by component order.
	slices.SortStableFunc(g.Nodes, func(a, b graphNode) int { return cmp.Compare(idx[a.Name], idx[b.Name]) })
	return g
}

func nodeView(s pipeline.Status, x, y int, href string) graphNode {
	n := graphNode{
		X: x, Y: y, W: graphNodeW, H: graphNodeH,
		Name:   s.Name,
		Label:  shorten(s.Name, 24),
		Href:   href,
		Kind:   s.Kind,
		Health: s.Health.String(),
		Fill:   healthColor(s.Health),
	}
	switch s.Kind {
	case pipeline.KindDiscoverer, pipeline.KindRelabel:
		n.Counters = fmt.Sprintf("%d targets", len(s.Targets))
		if len(s.Targets) == 1 {
			n.Counters = "1 target"
		}
	case pipeline.KindSource:
		n.Counters = "out " + humanCount(s.ItemsOut) + " · " + humanBytes(s.BytesOut)
	case pipeline.KindSink:
		n.Counters = "in " + humanCount(s.ItemsIn) + " · " + humanBytes(s.BytesIn)
	default:
		n.Counters = "in " + humanCount(s.ItemsIn) + " · out " + humanCount(s.ItemsOut)
	}
	var drops uint64
	for _, v := range s.Dropped {
		drops += v
	}
	n.ExtraColor = "#52606d"
	switch {
	case drops > 0:
		n.Extra = "dropped " + humanCount(drops)
		n.ExtraColor = "#9b2c2c"
	case s.QueueCap > 0 && s.QueueLen > 0:
		n.Extra = fmt.Sprintf("queue %d/%d", s.QueueLen, s.QueueCap)
	case s.Lag > 0 && s.Kind == pipeline.KindSource:
		n.Extra = "lag " + humanDuration(s.Lag)
	}
	n.Title = s.Name + " (" + string(s.Kind) + "): " + n.Health
	if s.LastError != "" {
		n.Title += ": " + shorten(redact.String(s.LastError), 300)
	}
	return n
}

// componentHref is the link from the handler's root page to a component.
func componentHref(name string) string { return "component/" + url.PathEscape(name) }

// shorten cuts s to at most n runes, marking the cut with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
