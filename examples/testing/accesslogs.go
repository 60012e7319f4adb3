// Package testing is an example of application code built on Ferry, and
// of how to unit-test it: Wire takes its source and sink as arguments, so
// the test (accesslogs_test.go) can pass a finite slice and the fake sink
// from sinktest, while main passes Docker and Loki. The package is named
// after its folder; it shares its name with the standard library's
// testing, so importers give it another (the test calls it accesslogs).
package testing

import (
	"strings"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/source"
)

// Wire adds the application's log handling to b: health checks are
// dropped, the container name becomes the "container" label and internal
// labels are removed before delivery.
func Wire(b *pipeline.Builder, in source.Source[ferry.Entry], out sink.Sink[ferry.Entry]) {
	logs := pipeline.FromSource(b, "access-logs", in)
	logs = pipeline.Process(b, "drop-health-checks", process.Filter(func(e *ferry.Entry) bool {
		return !strings.Contains(e.Line, "/healthz")
	}), logs)
	logs = pipeline.Relabel(b, "labels", []relabel.Rule{
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
		relabel.LabelDrop("__.*"),
	}, logs)
	pipeline.To(b, "loki", out, logs)
}
