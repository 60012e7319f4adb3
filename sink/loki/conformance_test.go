package loki

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/prometheus/prometheus/model/labels"
)

func TestConformance(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(map[Encoding]string{Protobuf: "protobuf", JSON: "json"}[enc], func(t *testing.T) {
			var last *fakeLoki
			sinktest.Run(t, sinktest.Harness[ferry.Entry]{
				New: func(t *testing.T) sink.Sink[ferry.Entry] {
					last = newFakeLoki(t, nil)
					return &Sink{URL: last.url(), Encoding: enc, BatchWait: 20 * time.Millisecond, BatchBytes: 300} // the harness starts it
				},
				Item: func(i int) ferry.Entry {
					return ferry.Entry{
						Labels:    labels.FromStrings("app", "conformance", "shard", fmt.Sprint(i%3)),
						Timestamp: t0.Add(time.Duration(i) * time.Microsecond),
						Line:      fmt.Sprintf("line %d", i),
					}
				},
				Delivered: func() []ferry.Entry {
					var out []ferry.Entry
					for _, r := range last.received() {
						for _, st := range r.Req.Streams {
							for _, e := range st.Entries {
								out = append(out, ferry.Entry{Timestamp: e.Timestamp, Line: e.Line})
							}
						}
					}
					return out
				},
				Key: func(e ferry.Entry) string { return fmt.Sprint(e.Timestamp.UnixNano(), e.Line) },
			})
		})
	}
}
