package debugui_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

// Mount the debug page under a prefix of the program's own mux; ask it
// for readiness and for one component as JSON.
func ExampleHandler() {
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.FailPermanently(errors.New("push to https://user:hunter2@loki.example/push: 401"))
	b := pipeline.New()
	pipeline.To(b, "loki", fake, pipeline.FromSource(b, "lines", &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{{Line: "a"}, {Line: "bb"}},
	}))
	p, _ := b.Build()
	p.Run(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/debug/ferry/", http.StripPrefix("/debug/ferry", debugui.Handler(p)))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/ferry/-/ready", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/ferry/api/v1/components/loki", nil))
	var c struct {
		Health    string   `json:"health"`
		LastError string   `json:"last_error"`
		ItemsIn   uint64   `json:"items_in"`
		Inputs    []string `json:"inputs"`
	}
	json.Unmarshal(rec.Body.Bytes(), &c)
	fmt.Println(c.Health, c.ItemsIn, c.Inputs)
	fmt.Println(c.LastError)
	// Output:
	// 503 Ferry is not ready: sink "loki" is failing: permanent: push to https://user:<redacted>@loki.example/push: 401
	// failing 2 [lines]
	// permanent: push to https://user:<redacted>@loki.example/push: 401
}

// Serve the debug page and /metrics on a listener until the context ends.
func ExampleServe() {
	b := pipeline.New()
	pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{{Line: "hello"}},
	}))
	p, _ := b.Build()
	p.Run(context.Background())

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- debugui.Serve(ctx, ln, p, nil) }()

	resp, _ := http.Get("http://" + ln.Addr().String() + "/metrics")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for l := range strings.Lines(string(body)) {
		if strings.HasPrefix(l, "ferry_component_items_in_total") {
			fmt.Print(l)
		}
	}
	stop()
	fmt.Println("stopped:", <-served)
	// Output:
	// ferry_component_items_in_total{component="in",kind="source"} 0
	// ferry_component_items_in_total{component="out",kind="sink"} 1
	// stopped: <nil>
}
