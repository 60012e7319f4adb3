package testing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	accesslogs "github.com/ferrydev/ferry/examples/testing"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

func entry(line string) ferry.Entry {
	return ferry.Entry{
		Labels:    labels.FromStrings("__meta_docker_container_name", "/shop-web-1", "__meta_docker_container_id", "abc"),
		Timestamp: time.Unix(1700000000, 0),
		Line:      line,
	}
}

func TestAccessLogs(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	var outcome error = errors.New("never acknowledged")
	in := &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{entry("GET /healthz 200"), entry("GET /cart 200"), entry("POST /pay 500")},
		Acked: func(err error) { outcome = err },
	}
	b := pipeline.New()
	accesslogs.Wire(b, in, fake)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	got := fake.Items()
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2 (health check dropped)", len(got))
	}
	for _, e := range got {
		if e.Labels.String() != `{container="shop-web-1"}` {
			t.Errorf("labels %s", e.Labels)
		}
	}
	if outcome != nil {
		t.Errorf("the source's batch was acknowledged with %v", outcome)
	}
}

// A sink that rejects the data for good: the source is told, and the drop
// is counted on the sink.
func TestAccessLogsRejected(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.FailPermanently(errors.New("400 entry too far behind"))
	var outcome error
	in := &source.Slice[ferry.Entry]{Items: []ferry.Entry{entry("GET /cart 200")}, Acked: func(err error) { outcome = err }}
	b := pipeline.New()
	accesslogs.Wire(b, in, fake)
	p, _ := b.Build()
	p.Run(context.Background())
	if !ferry.IsPermanent(outcome) {
		t.Fatalf("outcome %v, want a permanent error", outcome)
	}
	if st, _ := p.Component("loki"); st.Health != ferry.Failing {
		t.Fatalf("sink health %v", st.Health)
	}
}
