package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPipelineIsACollector(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	pipeline.To(b, "out", fake, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{{Line: "abc"}, {Line: "de"}},
	}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	p.Run(context.Background())
	want := `
# HELP ferry_component_bytes_in_total Payload bytes the component received.
# TYPE ferry_component_bytes_in_total counter
ferry_component_bytes_in_total{component="in",kind="source"} 0
ferry_component_bytes_in_total{component="out",kind="sink"} 5
# HELP ferry_component_items_out_total Items the component passed on.
# TYPE ferry_component_items_out_total counter
ferry_component_items_out_total{component="in",kind="source"} 2
ferry_component_items_out_total{component="out",kind="sink"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ferry_component_bytes_in_total", "ferry_component_items_out_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "ferry_component_health"); err != nil || n != 8 {
		t.Fatalf("health series %d %v", n, err)
	}
}

func TestTapAndTargets(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.Block()
	b := pipeline.New()
	pipeline.To(b, "out", fake, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{{Line: "one"}, {Line: "two"}, {Line: "three"}}, BatchSize: 1,
	}))
	p, _ := b.Build()
	lines, stop, err := p.Tap("in", 10, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Tap("nope", 1, 1, 1); err == nil {
		t.Fatal("tap on unknown component")
	}
	done := make(chan error)
	go func() { done <- p.Run(context.Background()) }()
	if l := <-lines; !strings.HasSuffix(l, "{} one") {
		t.Fatalf("tap line %q", l)
	}
	stop()
	stop()
	fake.Unblock()
	<-done
	if _, err := p.Positions("in"); err == nil {
		t.Fatal("slice source reports no positions")
	}
}
