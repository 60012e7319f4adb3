// Package ferry is the shared data model of Ferry, a library of telemetry
// pipeline components composed in Go: discover Docker containers and files,
// relabel their metadata, read their logs, scrape Prometheus endpoints, and
// deliver logs to Loki and samples to Prometheus remote write, all inside
// your own program, checked by the compiler and testable with fake sinks.
//
// # Data flow
//
//	Discoverer ──targets──▶ relabel ──targets──▶ Source ──batches──▶ Processor… ──batches──▶ Sink
//
// Targets are label sets (labels.Labels) such as {__address__="10.0.0.5:80",
// __meta_docker_container_name="/web"}. Everything else travels in batches:
// a Batch holds a slice of Entry (a log line with labels, timestamp and
// structured metadata) or of Sample (a Prometheus value), and an Ack through
// which the final owner reports delivery back to the source. Sources move
// their positions (file offsets, container log timestamps) only over data
// whose acknowledgement arrived: delivery is at least once, end to end.
//
// # The four interfaces
//
//   - discovery.Discoverer finds targets and sends the full set on every change.
//   - source.Source and source.TargetSource produce batches; a TargetSource
//     follows a changing set of targets.
//   - process.Processor transforms batches in place: relabel, parse, filter.
//   - sink.Sink delivers batches and acknowledges them.
//
// Package pipeline joins them with bounded channels: a slow sink slows its
// sources down instead of growing memory. Components have names, and the
// handles the builder returns are typed, so a stream of samples cannot be
// wired into a log sink. Failing components are restarted with backoff and
// shown in each component's health; Build reports every wiring mistake
// before anything runs.
//
// # Example
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//		defer stop()
//
//		b := pipeline.New()
//		logs := pipeline.FromSource(b, "stdin", &source.Reader{
//			R:      os.Stdin,
//			Labels: labels.FromStrings("job", "app"),
//		})
//		logs = pipeline.Relabel(b, "labels", []relabel.Rule{
//			relabel.Set("host", "web-1"),
//		}, logs)
//		pipeline.To(b, "console", &sink.Console[ferry.Entry]{}, logs)
//
//		p, err := b.Build()
//		if err != nil {
//			log.Fatal(err)
//		}
//		if err := p.Run(ctx); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// Swap the console for a Loki sink and the reader for Docker discovery and
// container logs, and this is Promtail in twenty lines; see examples/, and
// docs/migration.md for Promtail and Alloy configurations translated block by
// block.
package ferry
