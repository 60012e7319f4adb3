package otlp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/internal/poll"
)

// TestCollector has a real OpenTelemetry Collector take logs and metrics
// from a test client over OTLP/HTTP and export them with its otlphttp
// exporter (gzip, its default) to Ferry's receivers: what arrives is what
// the client sent, mapped as documented.
func TestCollector(t *testing.T) {
	bin := peers.Bin(t, "FERRY_OTELCOL_BIN", "scripts/setup/otelcol.sh")
	srv := &Server{Addr: "127.0.0.1:0"}
	logs := &LogsReceiver{Server: srv}
	metrics := &MetricsReceiver{Server: srv}
	for _, s := range []ferry.Starter{logs, metrics} {
		if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
	}
	defer logs.Close(context.Background())
	defer metrics.Close(context.Background())
	lc, _ := runSource(t, &logs.c, logs.Run, 1, true, nil)
	mc, _ := runSource(t, &metrics.c, metrics.Run, 1, true, nil)

	in := peers.FreeAddr(t)
	telemetry := peers.FreeAddr(t)
	_, tport, _ := strings.Cut(telemetry, ":")
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
exporters:
  otlphttp:
    endpoint: http://%s
service:
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %s
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
    metrics:
      receivers: [otlp]
      exporters: [otlphttp]
`, in, srv.ListenAddr(), tport)
	path := filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, bin, "http://"+telemetry+"/metrics", "--config="+path)

	postUntil200(t, "http://"+in+"/v1/logs", mustMarshal(t, testLogs()))
	postUntil200(t, "http://"+in+"/v1/metrics", mustMarshal(t, testMetrics()))
	poll.Until(t, func() bool {
		return len(lc.got()) >= 3 && len(mc.got()) >= len(wantSamples)
	}, "entries and samples through the collector")
	checkEntries(t, lc.got(), wantLogs())
	if got := formatSamples(mc.got()); strings.Join(got, "\n") != strings.Join(wantSamples, "\n") {
		t.Errorf("samples:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSamples, "\n"))
	}
}

// postUntil200 posts an OTLP protobuf body until it is accepted: the
// collector's receiver may start after its telemetry endpoint.
func postUntil200(t *testing.T, url string, body []byte) {
	t.Helper()
	poll.Until(t, func() bool { return tryPost(url, body) == 200 }, "%s to accept a request", url)
}
