package docs

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/sink/remotewrite"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/dockerlogs"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/gather"
	"github.com/ferrydev/ferry/source/lokipush"
)

// The functions below hold the guide's snippets between "// snippet: NAME"
// and "// end snippet" lines; TestGuideInSync compares them with
// migration.md. The tests after them run every snippet.

func TestMain(m *testing.M) { dockertest.Main(m) }

// dockerLogs is docker_sd_configs + relabel_configs (discovery.docker +
// discovery.relabel + loki.source.docker).
func dockerLogs(b *pipeline.Builder, dataDir string, lokiSink sink.Sink[ferry.Entry]) error {
	// snippet: docker_sd
	containers := pipeline.Discover(b, "containers", &docker.Discoverer{
		Host:            "unix:///var/run/docker.sock",
		RefreshInterval: 5 * time.Second,
		Filters:         []docker.Filter{{Name: "label", Values: []string{"logging=promtail"}}},
		IncludeStopped:  true, // also read containers that exited before they were seen
	})
	// end snippet

	// snippet: relabel
	containers = pipeline.RelabelTargets(b, "containers_relabel", []relabel.Rule{
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
		relabel.Replace([]string{"__meta_docker_container_label_com_docker_compose_service"}, "(.*)", "service", "$1"),
		relabel.Drop([]string{"__meta_docker_container_label_logging_skip"}, "true"),
	}, containers)
	// end snippet

	// snippet: docker_logs
	pos, err := positions.Open(filepath.Join(dataDir, "positions.json"), positions.Options{})
	if err != nil {
		return err
	}
	logs := pipeline.FromTargets(b, "docker_logs", &dockerlogs.Source{PositionsFile: pos}, containers)
	// end snippet

	pipeline.To(b, "loki", lokiSink, logs)
	return nil
}

// fileLogs is Promtail's static_configs with __path__ (local.file_match +
// loki.source.file) with pipeline_stages (loki.process).
func fileLogs(b *pipeline.Builder, dataDir, logDir string, lokiSink sink.Sink[ferry.Entry]) error {
	// snippet: file_targets
	pos, err := positions.Open(filepath.Join(dataDir, "positions.json"), positions.Options{})
	if err != nil {
		return err
	}
	files := pipeline.Discover(b, "varlogs", &file.Discoverer{Patterns: []file.Pattern{{
		Path:   filepath.Join(logDir, "*.log"),
		Labels: labels.FromStrings("job", "varlogs"),
	}}})
	logs := pipeline.FromTargets(b, "tail", &filetail.Source{
		PositionsFile: pos,
		StartAt:       filetail.StartBeginning,
	}, files)
	// end snippet

	// snippet: stages
	stages, err := stage.New(
		&stage.JSON{Expressions: map[string]string{"level": "", "msg": "", "ts": "time"}},
		&stage.Drop{Source: []string{"level"}, Value: "debug"},
		&stage.Labels{Values: map[string]string{"level": ""}},
		&stage.Timestamp{Source: "ts", Format: "RFC3339Nano"},
		&stage.Output{Source: "msg"},
	)
	if err != nil {
		return err
	}
	logs = pipeline.Process(b, "parse", stages, logs)
	// end snippet

	pipeline.To(b, "loki", lokiSink, logs)
	return nil
}

// lokiWrite is clients (loki.write).
func lokiWrite(b *pipeline.Builder, logs pipeline.Stream[ferry.Entry]) *loki.Sink {
	// snippet: loki_write
	lokiSink := &loki.Sink{
		URL:            "http://loki:3100/loki/api/v1/push",
		TenantID:       "team-a",
		ExternalLabels: labels.FromStrings("cluster", "eu-1"),
		BatchWait:      time.Second,
		BatchBytes:     1 << 20,
	}
	pipeline.To(b, "loki", lokiSink, logs)
	// end snippet
	return lokiSink
}

// metricsParts is what the test changes or inspects after metricsPipeline.
type metricsParts struct {
	scraper *scrape.Scraper
	rw      *remotewrite.Sink
	self    *gather.Source
	p       *pipeline.Pipeline
	mux     http.Handler
}

// metricsPipeline is static_configs + prometheus.scrape +
// prometheus.remote_write, with the self-scrape and the debug page.
func metricsPipeline(b *pipeline.Builder, m *metricsParts) error {
	// snippet: static
	nodes := discovery.Addresses([]string{"localhost:9100", "localhost:9101"}, "env", "prod")
	targets := pipeline.Discover(b, "nodes", nodes)
	// end snippet

	// snippet: scrape
	scraper := &scrape.Scraper{Job: "node", Interval: 15 * time.Second}
	metrics := pipeline.FromTargets(b, "scrape", scraper, targets)
	// end snippet

	// snippet: self
	reg := prometheus.NewRegistry()
	self := &gather.Source{Gatherer: reg, Job: "ferry"}
	selfMetrics := pipeline.FromSource(b, "self", self)
	// end snippet

	// snippet: remote_write
	rw := &remotewrite.Sink{
		URL:            "http://prometheus:9090/api/v1/write",
		ExternalLabels: labels.FromStrings("cluster", "eu-1"),
		Metadata:       scraper.Metadata,
	}
	pipeline.To(b, "remote_write", rw, metrics, selfMetrics)
	// end snippet

	// snippet: debug
	p, err := b.Build()
	if err != nil {
		return err
	}
	reg.MustRegister(p)
	// The debug page at / and /metrics, as one http.Handler.
	mux := debugui.Mux(p, reg)
	// end snippet

	*m = metricsParts{scraper: scraper, rw: rw, self: self, p: p, mux: mux}
	return nil
}

// run runs p until done reports true or 30s passed, then stops it.
func run(t *testing.T, p *pipeline.Pipeline, what string, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			cancel()
			<-errc
			t.Fatalf("%s: not within 30s; components: %+v", what, p.Components())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestDockerSnippets(t *testing.T) {
	c := dockertest.Client(t)
	name := "ferry-docs-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000")
	dockertest.Run(t, c, dockertest.Spec{
		Name: name, Lines: 3,
		Labels: map[string]string{"logging": "promtail", "com.docker.compose.service": "api"},
	})
	dockertest.Run(t, c, dockertest.Spec{
		Name: name + "-skipped", Lines: 3,
		Labels: map[string]string{"logging": "promtail", "logging_skip": "true"},
	})

	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	dir := t.TempDir()
	if err := dockerLogs(b, dir, fake); err != nil {
		t.Fatal(err)
	}
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	mine := func() (n int) {
		for _, e := range fake.Items() {
			switch e.Labels.Get("container") {
			case name:
				if e.Labels.Get("service") != "api" || e.Labels.Has("__meta_docker_container_id") {
					t.Fatalf("labels %v", e.Labels)
				}
				n++
			case name + "-skipped":
				t.Fatalf("dropped container read: %v", e)
			}
		}
		return n
	}
	run(t, p, "3 lines of the container", func() bool { return mine() == 3 })
	if _, err := os.Stat(filepath.Join(dir, "positions.json")); err != nil {
		t.Errorf("positions not saved: %v", err)
	}
}

func TestFileSnippets(t *testing.T) {
	dataDir, logDir := t.TempDir(), t.TempDir()
	lines := `{"level":"info","msg":"listening","time":"2026-01-02T03:04:05.123456789Z"}
{"level":"debug","msg":"noise","time":"2026-01-02T03:04:06Z"}
{"level":"error","msg":"failed","time":"2026-01-02T03:04:07Z"}
`
	if err := os.WriteFile(filepath.Join(logDir, "app.log"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	if err := fileLogs(b, dataDir, logDir, fake); err != nil {
		t.Fatal(err)
	}
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	run(t, p, "2 entries", func() bool { return fake.Len() >= 2 })
	got := fake.Items()
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2: %v", len(got), got)
	}
	want := []struct{ level, line, ts string }{
		{"info", "listening", "2026-01-02T03:04:05.123456789Z"},
		{"error", "failed", "2026-01-02T03:04:07Z"},
	}
	for i, e := range got {
		if e.Labels.Get("level") != want[i].level || e.Labels.Get("job") != "varlogs" || e.Line != want[i].line ||
			e.Timestamp.UTC().Format(time.RFC3339Nano) != want[i].ts {
			t.Errorf("entry %d: %v %q %v", i, e.Labels, e.Line, e.Timestamp)
		}
	}
	pos, err := positions.Open(filepath.Join(dataDir, "positions.json"), positions.Options{})
	if err != nil || len(pos.Keys()) != 1 {
		t.Errorf("positions: %v %v", pos.Keys(), err)
	}
}

func TestLokiWriteSnippet(t *testing.T) {
	recv := &lokipush.Receiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pushed := make(chan ferry.Batch[ferry.Entry], 16)
	if err := recv.Start(ctx, ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	go recv.Run(ctx, pushed)

	b := pipeline.New()
	logs := pipeline.FromSource(b, "app", &source.Slice[ferry.Entry]{Items: []ferry.Entry{
		{Labels: labels.FromStrings("job", "app"), Timestamp: time.Now(), Line: "hello"},
	}})
	lokiSink := lokiWrite(b, logs)
	lokiSink.URL = srv.URL + "/loki/api/v1/push" // the test's receiver instead of http://loki:3100
	lokiSink.BatchWait = 10 * time.Millisecond
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil { // a finite source: Run returns once delivered
		t.Fatal(err)
	}
	select {
	case got := <-pushed:
		e := got.Items[0]
		if e.Line != "hello" || e.Labels.Get("cluster") != "eu-1" || e.Labels.Get("__tenant_id__") != "team-a" {
			t.Errorf("pushed %v %q", e.Labels, e.Line)
		}
		got.Done(nil)
	case <-time.After(10 * time.Second):
		t.Fatal("nothing pushed")
	}
}

func TestMetricsSnippets(t *testing.T) {
	var mu sync.Mutex
	series := map[string]map[string]string{} // job/name/instance -> labels
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pb, err := snappy.Decode(nil, body)
		var req prompb.WriteRequest
		if err == nil {
			err = req.Unmarshal(pb)
		}
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ts := range req.Timeseries {
			m := map[string]string{}
			for _, l := range ts.Labels {
				m[l.Name] = l.Value
			}
			series[m["job"]+"/"+m["__name__"]+"/"+m["instance"]] = m
		}
	}))
	defer srv.Close()
	has := func(key string) map[string]string {
		mu.Lock()
		defer mu.Unlock()
		return series[key]
	}

	b := pipeline.New()
	var m metricsParts
	if err := metricsPipeline(b, &m); err != nil {
		t.Fatal(err)
	}
	// The test's receiver and shorter intervals instead of the snippets'.
	m.rw.URL = srv.URL + "/api/v1/write"
	m.rw.BatchSendDeadline = 20 * time.Millisecond
	m.scraper.Interval = 200 * time.Millisecond
	m.self.Interval = 200 * time.Millisecond

	run(t, m.p, "up of both nodes and the self-metrics", func() bool {
		return has("node/up/localhost:9100") != nil && has("node/up/localhost:9101") != nil &&
			has("ferry/ferry_component_items_out_total/"+hostname(t)) != nil
	})
	if l := has("node/up/localhost:9100"); l["env"] != "prod" || l["cluster"] != "eu-1" {
		t.Errorf("up labels %v", l)
	}

	rec := httptest.NewRecorder()
	m.mux.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "remote_write") {
		t.Errorf("debug page: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	m.mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `ferry_component_items_out_total{component="scrape"`) {
		t.Errorf("/metrics lacks the pipeline's metrics:\n%.2000s", rec.Body.String())
	}
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
