package debugui

import (
	"html"
	"net/url"
	"strconv"
	"strings"

	"github.com/ferrydev/ferry/pipeline"
)

// The pages are written by the functions below rather than by
// html/template: template execution calls methods by reflection, which
// makes the linker keep every exported method of every type in the
// program, some 5 MB in a typical binary. Every value that is not a
// constant of this file goes through esc, and every link through href or
// an escaped relative path, so nothing shown can open a tag, leave an
// attribute or turn into a script URL.

// esc escapes s for HTML text and for quoted attribute values.
func esc(s string) string { return html.EscapeString(s) }

// relHref is the link to a path relative to the current page's directory;
// the "./" keeps a name with a colon from reading as a URL scheme.
func relHref(p string) string { return "./" + url.PathEscape(p) }

// page accumulates one HTML document.
type page struct{ strings.Builder }

// w writes its arguments as they are: constant markup, or values already
// escaped.
func (p *page) w(s ...string) {
	for _, x := range s {
		p.WriteString(x)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func (p *page) head(d *pageData) {
	p.w(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
`)
	if d.Refresh > 0 {
		p.w(`<meta http-equiv="refresh" content="`, itoa(d.Refresh), `">`)
	}
	p.w(`
<title>`, esc(d.Title), `</title>
<style>`, uiCSS, `</style>
</head>
<body>
<header class="top">
  <a class="brand" href="`, esc(d.Root), `">ferry</a>
  <nav>
    <a href="`, esc(d.Root), `">Pipeline</a>
    <a href="`, esc(d.Root), `api/v1/components">API</a>
    <a href="`, esc(d.Root), `-/ready">Ready</a>
  </nav>
  `)
	if d.Ready != nil {
		p.w(`<span class="ready notready" id="ready" title="`, esc(d.Ready.Error()), `">not ready</span>`)
	} else {
		p.w(`<span class="ready isready" id="ready">ready</span>`)
	}
	p.w("\n</header>\n<main>\n")
}

func (p *page) foot(d *pageData) {
	p.w("\n</main>\n<footer>")
	switch {
	case !d.CanRefresh:
	case d.Refresh > 0:
		p.w(`Refreshes every `, itoa(d.Refresh), `s · <a href="?refresh=0">stop</a>`)
	default:
		p.w(`<a href="?">refresh automatically</a>`)
	}
	p.w("</footer>\n</body>\n</html>\n")
}

func (p *page) badge(r *rowView) {
	p.w(`<span class="badge" style="background: `, esc(r.Color), `" data-health="`, esc(r.HealthName), `">`, esc(r.HealthName), `</span>`)
}

func (p *page) graph(g graphView) {
	wd, ht := itoa(g.Width), itoa(g.Height)
	p.w(`<svg xmlns="http://www.w3.org/2000/svg" class="graph" id="graph" width="`, wd, `" height="`, ht, `" viewBox="0 0 `, wd, ` `, ht, `" role="img" aria-label="component graph">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#7b8794"/></marker></defs>
`)
	for _, e := range g.Edges {
		p.w(`<path class="edge" data-from="`, esc(e.From), `" data-to="`, esc(e.To), `" d="`, esc(e.D), `" fill="none" stroke="#7b8794" stroke-width="1.6" marker-end="url(#arrow)"/>`, "\n")
	}
	for _, n := range g.Nodes {
		x, y, fill := itoa(n.X), itoa(n.Y), esc(n.Fill)
		p.w(`<a href="`, esc(n.Href), `" class="node" data-component="`, esc(n.Name), `" data-kind="`, esc(string(n.Kind)), `" data-health="`, esc(n.Health), `" data-fill="`, fill, `">
<title>`, esc(n.Title), `</title>
<rect x="`, x, `" y="`, y, `" width="`, itoa(n.W), `" height="`, itoa(n.H), `" rx="8" fill="#ffffff" stroke="`, fill, `" stroke-width="2"/>
<rect class="health" x="`, x, `" y="`, y, `" width="10" height="`, itoa(n.H), `" rx="3" fill="`, fill, `"/>
<text x="`, x, `" y="`, y, `" dx="20" dy="22" class="name" font-size="15" font-weight="600" fill="#1f2933">`, esc(n.Label), `</text>
<text x="`, x, `" y="`, y, `" dx="20" dy="40" class="kind" font-size="12" fill="#52606d">`, esc(string(n.Kind)), ` · <tspan fill="`, fill, `" font-weight="600">`, esc(n.Health), `</tspan></text>
<text x="`, x, `" y="`, y, `" dx="20" dy="58" class="counters" font-size="12" fill="#323f4b">`, esc(n.Counters), `</text>
`)
		if n.Extra != "" {
			p.w(`<text x="`, x, `" y="`, y, `" dx="20" dy="74" class="extra" font-size="11" fill="`, esc(n.ExtraColor), `">`, esc(n.Extra), `</text>`)
		}
		p.w("\n</a>\n")
	}
	p.w(`</svg>`)
}

func renderIndex(d *pageData) string {
	var p page
	p.head(d)
	p.w(`<section class="summary">
  <h1>Pipeline</h1>
  <p class="counts">`)
	for _, c := range d.Summary {
		p.w(`<span class="count"><span class="dot" style="background: `, esc(c.Color), `"></span>`, itoa(c.N), ` `, esc(c.Health), `</span>`)
	}
	p.w("</p>\n")
	if d.Ready != nil {
		p.w(`  <p class="reason">Not ready: `, esc(d.Ready.Error()), "</p>\n")
	}
	p.w(`</section>
<section class="graphbox">
`)
	p.graph(d.Graph)
	p.w(`
<p class="legend"><span class="dot" style="background: #2e9e44"></span>healthy <span class="dot" style="background: #e8a200"></span>degraded <span class="dot" style="background: #d93025"></span>failing <span class="dot" style="background: #9aa0a6"></span>unknown</p>
</section>
<section>
<table class="components" id="components">
<thead><tr><th>Component</th><th>Kind</th><th>Health</th><th class="num">In</th><th class="num">Out</th><th class="num">Bytes out</th><th class="num">Dropped</th><th class="num">Queue</th><th class="num">Lag</th><th>Last OK</th><th>Last error</th></tr></thead>
<tbody>
`)
	for i := range d.Components {
		r := &d.Components[i]
		p.w(`<tr data-component="`, esc(r.Name), `" data-health="`, esc(r.HealthName), `">
<td><a href="`, esc(r.Href), `">`, esc(r.Name), `</a>`)
		if len(r.State) > 0 {
			p.w(`<div class="state muted">`)
			for j, st := range r.State {
				if j > 0 {
					p.w(` · `)
				}
				p.w(`<span title="`, esc(st.Exact), `">`, esc(st.Key), ` `, esc(st.Value), `</span>`)
			}
			p.w(`</div>`)
		}
		p.w(`</td>
<td>`, esc(string(r.Kind)), `</td>
<td>`)
		p.badge(r)
		p.w(`</td>
<td class="num">`, humanCount(r.ItemsIn), `</td>
<td class="num">`, humanCount(r.ItemsOut), `</td>
<td class="num">`, humanBytes(r.BytesOut), `</td>
<td class="num">`)
		if r.DropTotal > 0 {
			p.w(`<span class="bad">`, humanCount(r.DropTotal), `</span>`)
		} else {
			p.w("0")
		}
		p.w(`</td>
<td class="num">`)
		if r.QueueCap > 0 {
			p.w(itoa(r.QueueLen), "/", itoa(r.QueueCap))
		}
		p.w(`</td>
<td class="num">`)
		if r.Lag > 0 {
			p.w(esc(humanDuration(r.Lag)))
		}
		p.w(`</td>
<td title="`, esc(stamp(r.LastOK)), `">`, esc(ago(r.LastOK)), `</td>
<td class="err">`, esc(r.Error), `</td>
</tr>
`)
	}
	p.w(`</tbody>
</table>
</section>`)
	p.foot(d)
	return p.String()
}

// hasTargets reports whether components of kind k have targets to list.
func hasTargets(k pipeline.Kind) bool {
	return k == pipeline.KindDiscoverer || k == pipeline.KindRelabel
}

func renderComponent(d *pageData) string {
	var p page
	p.head(d)
	c := &d.C
	root := esc(d.Root)
	p.w(`<p class="crumbs"><a href="`, root, `">Pipeline</a> / `, esc(c.Name), `</p>
<section class="title" data-component="`, esc(c.Name), `" data-health="`, esc(c.HealthName), `">
  <h1>`, esc(c.Name), `</h1>
  <p><span class="kindtag">`, esc(string(c.Kind)), `</span> `)
	p.badge(c)
	p.w(` <span class="muted" title="`, esc(stamp(c.Since)), `">since `, esc(ago(c.Since)), `</span></p>
</section>
`)
	if c.Error != "" {
		p.w(`<section class="error `, esc(c.HealthName), `" id="last-error"><h2>Last error</h2><pre>`, esc(c.Error), `</pre><p class="muted">`,
			esc(c.HealthName), ` since `, esc(stamp(c.Since)), ` (`, esc(ago(c.Since)), `)</p></section>`, "\n")
	}
	p.w(`<section class="cards">
  <div class="card"><h3>Items</h3><p>in `, humanCount(c.ItemsIn), ` · out `, humanCount(c.ItemsOut), `</p></div>
  <div class="card"><h3>Bytes</h3><p>in `, humanBytes(c.BytesIn), ` · out `, humanBytes(c.BytesOut), `</p></div>
  <div class="card"><h3>Batches</h3><p>in `, humanCount(c.BatchesIn), ` · out `, humanCount(c.BatchesOut), `</p></div>
  <div class="card"><h3>Retries · restarts</h3><p>`, humanCount(c.Retries), ` · `, humanCount(c.Restarts), `</p></div>
  <div class="card"><h3>Queue</h3>`)
	if c.QueueCap > 0 {
		p.w(`<p>`, itoa(c.QueueLen), ` of `, itoa(c.QueueCap), ` batches</p><div class="bar"><div style="width: `, itoa(fillPercent(c.QueueLen, c.QueueCap)), `%"></div></div>`)
	} else {
		p.w(`<p class="muted">none</p>`)
	}
	p.w(`</div>
  <div class="card"><h3>Lag</h3><p>`)
	if c.Lag > 0 {
		p.w(esc(humanDuration(c.Lag)))
	} else {
		p.w(`<span class="muted">n/a</span>`)
	}
	p.w(`</p></div>
  <div class="card"><h3>Last OK</h3><p title="`, esc(stamp(c.LastOK)), `">`, esc(ago(c.LastOK)), `</p></div>
</section>
<section class="links">
  <h2>Connections</h2>
  <p>Inputs: `)
	links := func(names []string) {
		for _, n := range names {
			p.w(`<a href="`, esc(relHref(n)), `">`, esc(n), `</a> `)
		}
		if len(names) == 0 {
			p.w(`<span class="muted">none</span>`)
		}
	}
	links(d.Inputs)
	p.w("</p>\n  <p>Outputs: ")
	links(d.Outputs)
	p.w("</p>\n  <p>")
	if !hasTargets(c.Kind) {
		p.w(`<a href="`, esc(relHref(c.Name)), `/tail">Live tail</a> · `)
	}
	p.w(`<a href="`, root, `api/v1/components/`, esc(url.PathEscape(c.Name)), `">JSON</a></p>
</section>
<section>
  <h2>Drops by reason</h2>
  `)
	if len(d.Drops) > 0 {
		p.w(`<table id="drops"><thead><tr><th>Reason</th><th class="num">Items</th></tr></thead><tbody>`, "\n  ")
		for _, dr := range d.Drops {
			p.w(`<tr><td>`, esc(dr.Reason), `</td><td class="num">`, humanCount(dr.N), `</td></tr>`)
		}
		p.w("\n  </tbody></table>")
	} else {
		p.w(`<p class="muted">No drops.</p>`)
	}
	p.w("\n</section>\n")
	if hasTargets(c.Kind) || len(d.Targets) > 0 {
		p.w(`<section>
  <h2>Targets (`, itoa(len(c.Targets)), `)</h2>
  `)
		if len(d.Targets) > 0 {
			p.w(`<table id="targets"><tbody>`)
			for _, t := range d.Targets {
				p.w(`<tr><td class="mono">`, esc(t), `</td></tr>`)
			}
			p.w(`</tbody></table>`)
		} else {
			p.w(`<p class="muted">No targets.</p>`)
		}
		if d.MoreTgts > 0 {
			p.w("\n  ", `<p class="muted">and `, itoa(d.MoreTgts), ` more (see the JSON)</p>`)
		}
		p.w("\n</section>\n")
	}
	if d.State != nil {
		p.w(`<section>
  <h2>State</h2>
  <table id="state"><tbody>`)
		for _, st := range d.State {
			p.w(`<tr data-key="`, esc(st.Key), `" data-value="`, esc(st.Exact), `"><td class="mono">`, esc(st.Key), `</td><td class="num" title="`, esc(st.Exact), `">`, esc(st.Value), `</td></tr>`)
		}
		p.w("</tbody></table>\n</section>\n")
	}
	if d.HasPos {
		p.w(`<section>
  <h2>Read positions</h2>
  `)
		if len(d.Positions) > 0 {
			p.w(`<table id="positions"><thead><tr><th>Key</th><th>Position</th></tr></thead><tbody>`)
			for _, ps := range d.Positions {
				p.w(`<tr><td class="mono">`, esc(ps.Key), `</td><td class="mono">`, esc(ps.Value), `</td></tr>`)
			}
			p.w(`</tbody></table>`)
		} else {
			p.w(`<p class="muted">No positions yet.</p>`)
		}
		if d.MorePos > 0 {
			p.w("\n  ", `<p class="muted">and `, itoa(d.MorePos), ` more (see the JSON)</p>`)
		}
		p.w("\n</section>\n")
	}
	p.foot(d)
	return p.String()
}

// tailScript streams the tail's server-sent events into the page.
const tailScript = `<script>
(function () {
  var pre = document.getElementById("tail"), st = document.getElementById("state");
  if (!window.EventSource) { st.textContent = "this browser cannot stream; use the plain-text tail"; return; }
  var es = new EventSource(pre.dataset.src);
  es.onmessage = function (e) { pre.textContent += e.data + "\n"; };
  es.addEventListener("start", function (e) { st.textContent = e.data; });
  es.addEventListener("end", function (e) { st.textContent = e.data; es.close(); });
  es.onerror = function () { if (es.readyState !== 2) { st.textContent = "disconnected"; es.close(); } };
})();
</script>`

func renderTail(d *pageData) string {
	var p page
	p.head(d)
	name := esc(d.C.Name)
	t := d.Tail
	p.w(`<p class="crumbs"><a href="`, esc(d.Root), `">Pipeline</a> / <a href="../`, esc(url.PathEscape(d.C.Name)), `">`, name, `</a> / tail</p>
<h1>Live tail of `, name, `</h1>
<p class="muted">What `, name, ` passes on: one batch in `, itoa(t.Every), `, at most `, itoa(t.Items), ` items of each, up to `, itoa(t.Lines), ` lines or `, itoa(t.Seconds()), `s. Reload to tail again.</p>
<p id="state" class="muted">connecting…</p>
<pre id="tail" class="tail" data-src="`, esc(d.TailSSE), `"></pre>
<noscript><p><a href="`, esc(d.TailText), `">Open the tail as plain text</a></p></noscript>
`, tailScript)
	p.foot(d)
	return p.String()
}

func renderNotFound(d *pageData) string {
	var p page
	p.head(d)
	p.w(`<p class="crumbs"><a href="`, esc(d.Root), `">Pipeline</a></p>
<h1>No component “`, esc(d.C.Name), `”</h1>
<p>The pipeline has no component of that name.</p>`)
	p.foot(d)
	return p.String()
}

func renderGraph(g graphView) string {
	var p page
	p.graph(g)
	return p.String()
}
