package debugui

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferrydev/ferry/internal/redact"
)

// tailParams are the bounds of one live tail.
type tailParams struct {
	Lines   int           // stop after this many lines
	Timeout time.Duration // stop after this long
	Every   int           // sample one batch in every
	Items   int           // at most this many items per sampled batch
	SSE     bool
}

// Seconds is the time limit in whole seconds.
func (t tailParams) Seconds() int { return int(t.Timeout / time.Second) }

// Query renders the bounds as the tail endpoint's query string.
func (t tailParams) Query() string {
	v := url.Values{}
	v.Set("lines", strconv.Itoa(t.Lines))
	v.Set("seconds", strconv.Itoa(t.Seconds()))
	v.Set("every", strconv.Itoa(t.Every))
	v.Set("items", strconv.Itoa(t.Items))
	return v.Encode()
}

func intParam(q url.Values, name string, def, lo, hi int) int {
	v := q.Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return min(max(n, lo), hi)
}

func parseTail(r *http.Request) tailParams {
	q := r.URL.Query()
	return tailParams{
		Lines:   intParam(q, "lines", 100, 1, 10000),
		Timeout: time.Duration(intParam(q, "seconds", 30, 1, 600)) * time.Second,
		Every:   intParam(q, "every", 1, 1, 1_000_000),
		Items:   intParam(q, "items", 10, 1, 1000),
		SSE:     q.Get("format") == "sse" || strings.Contains(r.Header.Get("Accept"), "text/event-stream"),
	}
}

// apiTail streams what a component passes on while the client reads, within
// the bounds of tailParams.
func (h *debugHandler) apiTail(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := h.p.Component(name); !ok {
		http.Error(w, "no such component", http.StatusNotFound)
		return
	}
	select {
	case h.tails <- struct{}{}:
		defer func() { <-h.tails }()
	default:
		http.Error(w, fmt.Sprintf("too many live tails (at most %d at once)", maxTails), http.StatusTooManyRequests)
		return
	}
	tp := parseTail(r)
	lines, stop, err := h.p.Tap(name, min(tp.Lines, 256), tp.Every, tp.Items)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer stop()

	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	if tp.SSE {
		hd.Set("Content-Type", "text/event-stream")
	} else {
		hd.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(http.StatusOK)
	var buf []byte
	emit := func(event, data string) {
		if tp.SSE {
			if event != "" {
				buf = append(buf, "event: "+event+"\n"...)
			}
			// A line of data cannot hold a newline; tapped lines have none,
			// but keep the stream well-formed if one does.
			for l := range strings.Lines(data) {
				buf = append(buf, "data: "...)
				buf = append(buf, strings.TrimRight(l, "\r\n")...)
				buf = append(buf, '\n')
			}
			buf = append(buf, '\n')
			return
		}
		if event != "" {
			buf = append(buf, "# "...)
		}
		buf = append(buf, data...)
		buf = append(buf, '\n')
	}
	flush := func() bool {
		if len(buf) == 0 {
			return true
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		if err == nil {
			err = rc.Flush()
		}
		return err == nil
	}
	emit("start", fmt.Sprintf("tail of %q: up to %d lines in %ds, 1 batch in %d, %d items each", name, tp.Lines, tp.Seconds(), tp.Every, tp.Items))
	if !flush() {
		return
	}
	timer := time.NewTimer(tp.Timeout)
	defer timer.Stop()
	n := 0
	for n < tp.Lines {
		select {
		case l, ok := <-lines:
			if !ok {
				return
			}
			emit("", redact.String(l))
			n++
			// Take what else is waiting before flushing once.
			for more := true; more && n < tp.Lines; {
				select {
				case l, ok := <-lines:
					if !ok {
						more = false
						break
					}
					emit("", redact.String(l))
					n++
				default:
					more = false
				}
			}
			if !flush() {
				return
			}
		case <-timer.C:
			emit("end", fmt.Sprintf("time limit of %ds reached after %d lines", tp.Seconds(), n))
			flush()
			return
		case <-r.Context().Done():
			return
		}
	}
	emit("end", fmt.Sprintf("line limit of %d reached", tp.Lines))
	flush()
}

func (h *debugHandler) tailPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s, ok := h.p.Component(name)
	if !ok {
		h.notFound(w, "../../", name)
		return
	}
	d := &pageData{
		Title: "Tail of " + s.Name + " · Ferry",
		Root:  "../../",
		C:     rowOf(s, url.PathEscape(s.Name)),
		Tail:  parseTail(r),
	}
	// Both parts are escaped here: the name by PathEscape, the bounds by
	// url.Values.
	api := d.Root + "api/v1/components/" + url.PathEscape(s.Name) + "/tail?"
	d.TailSSE = api + "format=sse&" + d.Tail.Query()
	d.TailText = api + d.Tail.Query()
	h.render(w, http.StatusOK, renderTail, d)
}
