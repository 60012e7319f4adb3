package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

// Mount the debug page under a prefix of the program's own mux; ask it
// for readiness and for one component as JSON.
func ExamplePipeline_Handler() {
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.FailPermanently(errors.New("push to https://user:hunter2@loki.example/push: 401"))
	b := pipeline.New()
	pipeline.To(b, "loki", fake, pipeline.FromSource(b, "lines", &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{{Line: "a"}, {Line: "bb"}},
	}))
	p, _ := b.Build()
	p.Run(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/debug/ferry/", http.StripPrefix("/debug/ferry", p.Handler()))

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

func ExamplePipeline_Ready() {
	b := pipeline.New()
	pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{}))
	p, _ := b.Build()
	fmt.Println(p.Ready())
	p.Run(context.Background())
	fmt.Println(p.Ready())
	// Output:
	// pipeline not started
	// <nil>
}
