package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// A finite source, a relabel step and the console: Run returns once
// everything is delivered.
func Example() {
	ts := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	in := &source.Slice[ferry.Entry]{Items: []ferry.Entry{
		{Labels: labels.FromStrings("__meta_docker_container_name", "/web"), Timestamp: ts, Line: "GET / 200"},
		{Labels: labels.FromStrings("__meta_docker_container_name", "/db"), Timestamp: ts, Line: "checkpoint"},
	}}

	b := pipeline.New()
	logs := pipeline.FromSource(b, "demo", in)
	logs = pipeline.Relabel(b, "containers", []relabel.Rule{
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
		relabel.LabelDrop("__meta_.*"),
	}, logs)
	pipeline.To(b, "console", &sink.Console[ferry.Entry]{W: os.Stdout}, logs)

	p, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := p.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2026-11-25T12:00:00.000Z {container="web"} GET / 200
	// 2026-11-25T12:00:00.000Z {container="db"} checkpoint
}

// Build reports every wiring mistake at once, before anything runs.
func ExampleBuilder_Build() {
	b := pipeline.New()
	logs := pipeline.FromSource(b, "logs", &source.Slice[ferry.Entry]{})
	pipeline.Discover(b, "nobody-listens", discovery.Static{})
	pipeline.To(b, "console", &sink.Console[ferry.Entry]{}, logs)
	pipeline.To(b, "console", &sink.Console[ferry.Entry]{}, logs)
	_, err := b.Build()
	fmt.Println(err)
	// Output:
	// pipeline: sink "console": name already used by a sink
	// discoverer "nobody-listens": output is not consumed by any component
}

// A unit test of a user's pipeline: the fake sink records what arrives.
func ExamplePipeline_Components() {
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	pipeline.To(b, "fake", fake, pipeline.FromSource(b, "lines", &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{{Line: "a"}, {Line: "bb"}},
	}))
	p, _ := b.Build()
	p.Run(context.Background())
	for _, st := range p.Components() {
		fmt.Println(st.Name, st.Kind, st.Health, "out", st.ItemsOut, "in", st.ItemsIn, "bytes", st.BytesIn)
	}
	fmt.Println(len(fake.Items()), "entries delivered")
	// Output:
	// lines source healthy out 2 in 0 bytes 0
	// fake sink healthy out 0 in 2 bytes 3
	// 2 entries delivered
}

// With WithInlineChains a source's chain runs inside its source.Send: each
// batch has passed the processor, reached the sink and been acknowledged
// before the source sends the next one.
func ExampleWithInlineChains() {
	ts := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	in := &source.Slice[ferry.Entry]{
		Items:     []ferry.Entry{{Timestamp: ts, Line: "one"}, {Timestamp: ts, Line: "two"}},
		BatchSize: 1,
		Acked:     func(err error) { fmt.Println("acknowledged:", err) },
	}
	b := pipeline.New(pipeline.WithInlineChains())
	logs := pipeline.Process(b, "upper", process.Map(func(e *ferry.Entry) { e.Line = strings.ToUpper(e.Line) }),
		pipeline.FromSource(b, "lines", in))
	pipeline.To(b, "console", &sink.Console[ferry.Entry]{W: os.Stdout}, logs)
	p, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := p.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2026-12-05T12:00:00.000Z {} ONE
	// acknowledged: <nil>
	// 2026-12-05T12:00:00.000Z {} TWO
	// acknowledged: <nil>
}
