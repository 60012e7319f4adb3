package debugui

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/redact"
	"github.com/ferrydev/ferry/pipeline"
)

//go:embed ui/style.css
var uiCSS string

// maxTails bounds the live tails served at once by one Handler.
const maxTails = 4

// Handler returns the debug page of p and its API, to mount on any mux, at
// the root or under a prefix with http.StripPrefix:
//
//	mux.Handle("/debug/ferry/", http.StripPrefix("/debug/ferry", debugui.Handler(p)))
//
// A program that has no mux of its own calls ListenAndServe or Serve
// instead, which add /metrics.
//
// Every link is relative, so the page works wherever it is mounted, and
// needs nothing from the network: styles are inline, the graph is an SVG
// drawn on the server, and the pages refresh themselves without script.
//
//	GET /                                    the component graph, coloured by health (green healthy,
//	                                         yellow degraded, red failing, grey unknown), and a table of
//	                                         live counters; ?refresh=N reloads every N seconds (default
//	                                         5, 0 never)
//	GET /graph.svg                           the graph alone
//	GET /component/{name}                    one component: health, last error and since when,
//	                                         counters, drops by reason, queue fill, lag, targets of
//	                                         discoverers and relabel steps, read positions of sources,
//	                                         the state of components that report one (a disk buffer's
//	                                         bytes, records, oldest record age, replay rate, drops,
//	                                         corruptions: see pipeline.StateReporter)
//	GET /component/{name}/tail               a page showing the live tail below
//	GET /api/v1/components                   JSON behind / (without targets and positions; with states)
//	GET /api/v1/components/{name}            JSON behind /component/{name}
//	GET /api/v1/components/{name}/tail       live tail: what the component passes on, one item per
//	                                         line, streamed as text/plain, or as server-sent events
//	                                         with ?format=sse or Accept: text/event-stream
//	GET /api/v1/health                       JSON of readiness and components by health
//	GET /-/ready                             readiness: see Pipeline.Ready; 200 or 503
//	GET /-/healthy                           liveness: 200 whenever the handler can answer
//
// The live tail exists only while someone reads it (pipeline.Pipeline.Tap): it
// samples one batch in every ?every= (default 1) and at most ?items=
// (default 10) items of it, and ends after ?lines= lines (default 100, at
// most 10000) or ?seconds= seconds (default 30, at most 600), or when the
// client goes away. At most 4 tails run at once; more get 429.
//
// Everything that came from outside the program (errors, targets, labels,
// positions, tailed lines) is redacted before it is shown: credentials in
// URLs, authorization headers, tokens, and the values of secret-named
// parameters and labels.
//
// The handler only reads snapshots of the counters the pipeline keeps
// anyway, so it adds nothing to the data path while nobody looks.
func Handler(p *pipeline.Pipeline) http.Handler {
	h := &debugHandler{p: p, tails: make(chan struct{}, maxTails)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /graph.svg", h.graphSVG)
	mux.HandleFunc("GET /component/{name}", h.component)
	mux.HandleFunc("GET /component/{name}/tail", h.tailPage)
	mux.HandleFunc("GET /api/v1/components", h.apiComponents)
	mux.HandleFunc("GET /api/v1/components/{name}", h.apiComponent)
	mux.HandleFunc("GET /api/v1/components/{name}/tail", h.apiTail)
	mux.HandleFunc("GET /api/v1/health", h.apiHealth)
	mux.HandleFunc("GET /-/ready", h.ready)
	mux.HandleFunc("GET /-/healthy", h.healthy)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" {
			// Mounted with StripPrefix and asked for the prefix without
			// its slash: relative links need the slash.
			p := r.URL.EscapedPath()
			if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
				p = u.EscapedPath()
			}
			http.Redirect(w, r, path.Base(p)+"/", http.StatusMovedPermanently)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

type debugHandler struct {
	p     *pipeline.Pipeline
	tails chan struct{} // semaphore of running tails
}

// componentJSON is one component in the API: a pipeline.Status with secrets
// redacted and durations in seconds.
type componentJSON struct {
	Name       string            `json:"name"`
	Kind       pipeline.Kind     `json:"kind"`
	Inputs     []string          `json:"inputs"`
	Outputs    []string          `json:"outputs"`
	Health     string            `json:"health"`
	LastError  string            `json:"last_error,omitempty"`
	Since      time.Time         `json:"since"`
	ItemsIn    uint64            `json:"items_in"`
	ItemsOut   uint64            `json:"items_out"`
	BytesIn    uint64            `json:"bytes_in"`
	BytesOut   uint64            `json:"bytes_out"`
	BatchesIn  uint64            `json:"batches_in"`
	BatchesOut uint64            `json:"batches_out"`
	Dropped    map[string]uint64 `json:"dropped"`
	Retries    uint64            `json:"retries"`
	Restarts   uint64            `json:"restarts"`
	QueueLen   int               `json:"queue_len"`
	QueueCap   int               `json:"queue_cap"`
	LastOK     *time.Time        `json:"last_ok,omitempty"`
	LagSeconds float64           `json:"lag_seconds"`

	TargetCount int                 `json:"target_count"`
	Targets     []map[string]string `json:"targets,omitempty"`
	// Positions is null for components that do not report positions.
	Positions map[string]string `json:"positions,omitempty"`
	// State is null for components that do not report a state
	// (pipeline.StateReporter).
	State map[string]any `json:"state,omitempty"`
}

type componentsJSON struct {
	Ready      bool            `json:"ready"`
	Reason     string          `json:"reason,omitempty"`
	Components []componentJSON `json:"components"`
}

type healthJSON struct {
	Ready      bool           `json:"ready"`
	Reason     string         `json:"reason,omitempty"`
	Components map[string]int `json:"components"` // count by health
	Failing    []string       `json:"failing"`
}

// snapshot is one consistent read of every component, with outputs
// derived from inputs.
type snapshot struct {
	sts     []pipeline.Status
	outputs map[string][]string
	ready   error
}

func (h *debugHandler) snapshot() snapshot {
	sts := h.p.Components()
	out := make(map[string][]string, len(sts))
	for _, s := range sts {
		for _, in := range s.Inputs {
			out[in] = append(out[in], s.Name)
		}
	}
	return snapshot{sts: sts, outputs: out, ready: h.p.Ready()}
}

func (sn snapshot) find(name string) (pipeline.Status, bool) {
	for _, s := range sn.sts {
		if s.Name == name {
			return s, true
		}
	}
	return pipeline.Status{}, false
}

func toJSON(s pipeline.Status, outputs []string) componentJSON {
	c := componentJSON{
		Name:        s.Name,
		Kind:        s.Kind,
		Inputs:      nonNil(s.Inputs),
		Outputs:     nonNil(outputs),
		Health:      s.Health.String(),
		LastError:   redact.String(s.LastError),
		Since:       s.Since,
		ItemsIn:     s.ItemsIn,
		ItemsOut:    s.ItemsOut,
		BytesIn:     s.BytesIn,
		BytesOut:    s.BytesOut,
		BatchesIn:   s.BatchesIn,
		BatchesOut:  s.BatchesOut,
		Dropped:     s.Dropped,
		Retries:     s.Retries,
		Restarts:    s.Restarts,
		QueueLen:    s.QueueLen,
		QueueCap:    s.QueueCap,
		LagSeconds:  s.Lag.Seconds(),
		TargetCount: len(s.Targets),
	}
	if c.Dropped == nil {
		c.Dropped = map[string]uint64{}
	}
	if !s.LastOK.IsZero() {
		t := s.LastOK
		c.LastOK = &t
	}
	return c
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// withDetails adds what only the component's own view shows: its targets
// and its read positions, redacted.
func (h *debugHandler) withDetails(c *componentJSON, s pipeline.Status) {
	for _, t := range s.Targets {
		c.Targets = append(c.Targets, redact.Labels(t))
	}
	c.State = stateJSON(h.stateOf(s.Name))
	if pos, err := h.p.Positions(s.Name); err == nil {
		c.Positions = make(map[string]string, len(pos))
		for k, v := range pos {
			c.Positions[redact.String(k)] = redact.String(v)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (h *debugHandler) apiComponents(w http.ResponseWriter, r *http.Request) {
	sn := h.snapshot()
	out := componentsJSON{Ready: sn.ready == nil, Components: make([]componentJSON, 0, len(sn.sts))}
	if sn.ready != nil {
		out.Reason = sn.ready.Error()
	}
	for _, s := range sn.sts {
		c := toJSON(s, sn.outputs[s.Name])
		c.State = stateJSON(h.stateOf(s.Name))
		out.Components = append(out.Components, c)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *debugHandler) apiComponent(w http.ResponseWriter, r *http.Request) {
	sn := h.snapshot()
	s, ok := sn.find(r.PathValue("name"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such component"})
		return
	}
	c := toJSON(s, sn.outputs[s.Name])
	h.withDetails(&c, s)
	writeJSON(w, http.StatusOK, c)
}

func (h *debugHandler) apiHealth(w http.ResponseWriter, r *http.Request) {
	sn := h.snapshot()
	out := healthJSON{Ready: sn.ready == nil, Components: map[string]int{}, Failing: []string{}}
	for _, hs := range healthStates {
		out.Components[hs.String()] = 0
	}
	for _, s := range sn.sts {
		out.Components[s.Health.String()]++
		if s.Health == ferry.Failing {
			out.Failing = append(out.Failing, s.Name)
		}
	}
	if sn.ready != nil {
		out.Reason = sn.ready.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *debugHandler) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.p.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "Ferry is not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "Ferry is ready.")
}

func (h *debugHandler) healthy(w http.ResponseWriter, r *http.Request) {
	// Taking every status exercises the locks the pipeline's components
	// share with their reporters: a deadlocked component makes this hang
	// rather than answer, which is what a liveness probe should see.
	h.p.Components()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "Ferry is healthy.")
}

// pageData is what the HTML templates render.
type pageData struct {
	Title   string
	Root    string // relative path from the page to the handler's root
	Refresh int    // seconds; 0 for none
	// CanRefresh is set on pages that refresh themselves (?refresh=N).
	CanRefresh bool
	Ready      error
	Summary    []healthCount

	Graph      graphView
	Components []rowView

	C         rowView
	Inputs    []string
	Outputs   []string
	Drops     []dropView
	Targets   []string
	MoreTgts  int
	Positions []posView
	HasPos    bool
	MorePos   int
	State     []stateView // of a pipeline.StateReporter; nil for others

	Tail     tailParams
	TailSSE  string // the tail endpoint as server-sent events
	TailText string // and as plain text
}

type healthCount struct {
	Health string
	Color  string
	N      int
}

type rowView struct {
	pipeline.Status
	HealthName string
	Color      string
	Href       string
	Error      string // redacted
	DropTotal  uint64
	State      []stateView // the first of the component's state, if it has one
}

type dropView struct {
	Reason string
	N      uint64
}

type posView struct{ Key, Value string }

// Limits of what one component page lists.
const (
	pageMaxTargets   = 500
	pageMaxPositions = 500
)

func rowOf(s pipeline.Status, href string) rowView {
	r := rowView{Status: s, HealthName: s.Health.String(), Color: healthColor(s.Health), Href: href, Error: redact.String(s.LastError)}
	for _, n := range s.Dropped {
		r.DropTotal += n
	}
	return r
}

func refreshParam(r *http.Request, def int) int {
	v := r.URL.Query().Get("refresh")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return def
	}
	return min(n, 3600)
}

func (h *debugHandler) render(w http.ResponseWriter, code int, page func(*pageData) string, d *pageData) {
	if d.Ready == nil {
		d.Ready = h.p.Ready()
	}
	body := page(d)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

func summary(sts []pipeline.Status) []healthCount {
	var out []healthCount
	for _, hs := range []ferry.Health{ferry.Healthy, ferry.Degraded, ferry.Failing, ferry.HealthUnknown} {
		n := 0
		for _, s := range sts {
			if s.Health == hs {
				n++
			}
		}
		if n > 0 {
			out = append(out, healthCount{hs.String(), healthColor(hs), n})
		}
	}
	return out
}

func (h *debugHandler) index(w http.ResponseWriter, r *http.Request) {
	sn := h.snapshot()
	d := &pageData{
		Title:      "Ferry pipeline",
		Root:       "./",
		Refresh:    refreshParam(r, 5),
		CanRefresh: true,
		Ready:      sn.ready,
		Summary:    summary(sn.sts),
		Graph:      layoutGraph(sn.sts, componentHref),
	}
	for _, s := range sn.sts {
		r := rowOf(s, componentHref(s.Name))
		r.State = rowState(h.stateOf(s.Name))
		d.Components = append(d.Components, r)
	}
	h.render(w, http.StatusOK, renderIndex, d)
}

func (h *debugHandler) graphSVG(w http.ResponseWriter, r *http.Request) {
	sn := h.snapshot()
	g := layoutGraph(sn.sts, componentHref)
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, renderGraph(g))
}

func (h *debugHandler) notFound(w http.ResponseWriter, root, name string) {
	h.render(w, http.StatusNotFound, renderNotFound, &pageData{Title: "No component " + name, Root: root, C: rowView{Status: pipeline.Status{Name: name}}})
}

func (h *debugHandler) component(w http.ResponseWriter, r *http.Request) {
	sn := h.snapshot()
	name := r.PathValue("name")
	s, ok := sn.find(name)
	if !ok {
		h.notFound(w, "../", name)
		return
	}
	d := &pageData{
		Title:      s.Name + " · Ferry",
		Root:       "../",
		Refresh:    refreshParam(r, 5),
		CanRefresh: true,
		Ready:      sn.ready,
		C:          rowOf(s, url.PathEscape(s.Name)),
		Inputs:     s.Inputs,
		Outputs:    sn.outputs[s.Name],
	}
	for reason, n := range s.Dropped {
		d.Drops = append(d.Drops, dropView{reason, n})
	}
	slices.SortFunc(d.Drops, func(a, b dropView) int { return strings.Compare(a.Reason, b.Reason) })
	for i, t := range s.Targets {
		if i == pageMaxTargets {
			d.MoreTgts = len(s.Targets) - i
			break
		}
		d.Targets = append(d.Targets, redact.LabelString(t))
	}
	d.State = stateViews(h.stateOf(s.Name))
	if pos, err := h.p.Positions(s.Name); err == nil {
		d.HasPos = true
		keys := make([]string, 0, len(pos))
		for k := range pos {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i == pageMaxPositions {
				d.MorePos = len(keys) - i
				break
			}
			d.Positions = append(d.Positions, posView{redact.String(k), redact.String(pos[k])})
		}
	}
	h.render(w, http.StatusOK, renderComponent, d)
}

// Formatting helpers of the templates.

func humanCount(n uint64) string {
	switch {
	case n < 10_000:
		return strconv.FormatUint(n, 10)
	case n < 1_000_000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "k"
	case n < 1_000_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	}
	return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + "G"
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	f, u := float64(n), 0
	for f >= unit && u < 5 {
		f /= unit
		u++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + "KMGTPE"[u-1:u] + "iB"
}

func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// ago says how long before now t was, or "never" for the zero time.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	if d < time.Second {
		return "just now"
	}
	return d.Round(time.Second).String() + " ago"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

func fillPercent(n, c int) int {
	if c <= 0 {
		return 0
	}
	return min(100, n*100/c)
}

// healthStates are the health states in the order the API lists them.
var healthStates = []ferry.Health{ferry.HealthUnknown, ferry.Healthy, ferry.Degraded, ferry.Failing}
