package debugui_test

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

// Any component name and any query: every page answers without a server
// error, and markup in the name never reaches a page unescaped (the name
// ends in a tag that the pages' own markup never has).
func FuzzPages(f *testing.F) {
	f.Add("in", "refresh=5")
	f.Add(`<script>alert(1)</script>`, "lines=0&seconds=-1&every=x&items=99999999999999999999")
	f.Add("javascript:x", "refresh=3601&format=sse")
	f.Add("a/b c?d#e", "%zz")
	f.Add("\x00\xff", "refresh=-1")
	const tag = "<x-fuzz>"
	f.Fuzz(func(t *testing.T, name, query string) {
		name += tag
		b := pipeline.New()
		in := pipeline.FromSource(b, name, &source.Slice[ferry.Entry]{})
		pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, in)
		p, err := b.Build()
		if err != nil {
			t.Skip() // a name Build refuses (empty, or the other one's)
		}
		h := debugui.Handler(p)
		esc := url.PathEscape(name)
		for _, path := range []string{"/", "/graph.svg", "/component/" + esc, "/component/" + esc + "/tail", "/component/out", "/api/v1/components", "/api/v1/health", "/-/ready"} {
			req := httptest.NewRequest("GET", path, nil)
			req.URL.RawQuery = query
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 && !(path == "/-/ready" && rec.Code == 503) {
				t.Fatalf("GET %s?%s = %d:\n%s", path, query, rec.Code, rec.Body.String())
			}
			ct := rec.Header().Get("Content-Type")
			if (strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "image/svg")) && strings.Contains(rec.Body.String(), tag) {
				t.Fatalf("GET %s shows the name %q unescaped", path, name)
			}
		}
	})
}
