package debugui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// Secrets that appear in the test pipeline's errors, targets, labels,
// positions and lines, and must never appear in what the handler serves.
var testSecrets = []string{"hunter2", "s3cr3t", "abc123tok", "pushpw"}

// tickingSource emits one entry per target every few milliseconds until
// its context ends, and reports a position per target.
type tickingSource struct {
	mu  sync.Mutex
	pos map[string]string
}

func (s *tickingSource) Run(ctx context.Context, targets <-chan []labels.Labels, out chan<- ferry.Batch[ferry.Entry]) error {
	var cur []labels.Labels
	t := time.NewTicker(3 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case cur = <-targets:
		case <-t.C:
			if len(cur) == 0 {
				continue
			}
			items := make([]ferry.Entry, 0, len(cur))
			for _, tg := range cur {
				items = append(items, ferry.Entry{Labels: tg, Timestamp: time.Now(), Line: "GET /login?user=bob&password=hunter2 200"})
			}
			s.mu.Lock()
			if s.pos == nil {
				s.pos = map[string]string{}
			}
			s.pos["https://reader:s3cr3t@files.example/app.log"] = "offset=" + strconv.Itoa(i)
			s.mu.Unlock()
			if err := source.Send(ctx, out, ferry.NewBatch(items, nil)); err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *tickingSource) Positions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.pos))
	for k, v := range s.pos {
		out[k] = v
	}
	return out
}

// slowParser says it is degraded and drops a few items of every batch.
var slowParser = process.Func[ferry.Entry](func(ctx context.Context, b ferry.Batch[ferry.Entry]) (ferry.Batch[ferry.Entry], error) {
	r := ferry.ReporterFrom(ctx)
	r.SetHealth(ferry.Degraded, errors.New(`peer slow: Get "http://loki:3100/ready?token=abc123tok": context deadline exceeded`))
	r.Dropped("too_large", 1)
	return b, nil
})

// testPipeline builds and starts a pipeline with a component in each health
// state: discoverer, relabel step and source healthy, a processor degraded,
// the sink failing, and an idle discoverer unknown. It returns once they
// all show that state.
func testPipeline(t *testing.T) (*pipeline.Pipeline, *sinktest.Sink[ferry.Entry]) {
	t.Helper()
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.FailPermanently(errors.New("push to https://ferry:pushpw@loki.example/loki/api/v1/push: 401 Unauthorized"))

	b := pipeline.New(pipeline.WithDrainTimeout(2 * time.Second))
	docker := pipeline.Discover(b, "docker", discovery.Static{
		labels.FromStrings("__address__", "web:80", "__meta_docker_container_name", "/web",
			"__meta_docker_container_label_db_password", "hunter2"),
	})
	idle := pipeline.Discover(b, "idle", discovery.Func(func(ctx context.Context, _ chan<- []labels.Labels) error {
		<-ctx.Done()
		return nil
	}))
	targets := pipeline.RelabelTargets(b, "containers", []relabel.Rule{
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
	}, docker, idle)
	logs := pipeline.FromTargets(b, "logs", &tickingSource{}, targets)
	logs = pipeline.Process(b, "parse", slowParser, logs)
	pipeline.To(b, "loki", fake, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("pipeline did not stop")
		}
	})
	waitHealth(t, p, map[string]ferry.Health{
		"docker": ferry.Healthy, "idle": ferry.HealthUnknown, "containers": ferry.Healthy,
		"logs": ferry.Healthy, "parse": ferry.Degraded, "loki": ferry.Failing,
	})
	return p, fake
}

func waitHealth(t *testing.T, p *pipeline.Pipeline, want map[string]ferry.Health) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for name, h := range want {
			if st, _ := p.Component(name); st.Health != h {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, st := range p.Components() {
				t.Logf("%s: %s %s", st.Name, st.Health, st.LastError)
			}
			t.Fatal("components did not reach the expected health")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(t *testing.T, h http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func noSecrets(t *testing.T, where, body string) {
	t.Helper()
	for _, s := range testSecrets {
		if strings.Contains(body, s) {
			t.Errorf("%s shows the secret %q:\n%s", where, s, body)
		}
	}
}

var wantColors = map[string]string{
	"docker": "#2e9e44", "containers": "#2e9e44", "logs": "#2e9e44",
	"parse": "#e8a200", "loki": "#d93025", "idle": "#9aa0a6",
}

func TestHandlerIndex(t *testing.T) {
	p, _ := testPipeline(t)
	h := debugui.Handler(p)
	rec := get(t, h, "/")
	body := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for name, color := range wantColors {
		st, _ := p.Component(name)
		node := `<a href="component/` + name + `" class="node" data-component="` + name + `" data-kind="` + string(st.Kind) +
			`" data-health="` + st.Health.String() + `" data-fill="` + color + `">`
		if !strings.Contains(body, node) {
			t.Errorf("graph lacks %s", node)
		}
		if !strings.Contains(body, `<tr data-component="`+name+`" data-health="`+st.Health.String()+`">`) {
			t.Errorf("table lacks a row of %s", name)
		}
	}
	for _, edge := range []string{`data-from="docker" data-to="containers"`, `data-from="idle" data-to="containers"`,
		`data-from="containers" data-to="logs"`, `data-from="logs" data-to="parse"`, `data-from="parse" data-to="loki"`} {
		if !strings.Contains(body, edge) {
			t.Errorf("graph lacks edge %s", edge)
		}
	}
	for _, want := range []string{`<meta http-equiv="refresh" content="5">`, `class="ready notready"`, "1 failing", "1 degraded", "1 unknown",
		"push to https://ferry:&lt;redacted&gt;@loki.example"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	noSecrets(t, "GET /", body)

	if body := get(t, h, "/?refresh=0").Body.String(); strings.Contains(body, "http-equiv") {
		t.Error("refresh=0 still refreshes")
	}
	if rec := get(t, h, "/nope"); rec.Code != 404 {
		t.Errorf("GET /nope = %d", rec.Code)
	}
}

func TestHandlerGraphSVG(t *testing.T) {
	p, _ := testPipeline(t)
	rec := get(t, debugui.Handler(p), "/graph.svg")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("GET /graph.svg = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	// A standalone SVG must be well-formed XML.
	d := xml.NewDecoder(strings.NewReader(rec.Body.String()))
	nodes := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, rec.Body.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "a" {
			nodes++
		}
	}
	if nodes != 6 {
		t.Errorf("%d nodes in the SVG, want 6", nodes)
	}
	noSecrets(t, "graph.svg", rec.Body.String())
}

func TestHandlerComponentPage(t *testing.T) {
	p, _ := testPipeline(t)
	h := debugui.Handler(p)
	cases := map[string][]string{
		"loki": {`data-health="failing"`, `id="last-error"`, "push to https://ferry:&lt;redacted&gt;@loki.example/loki/api/v1/push: 401 Unauthorized",
			`<a href="./parse">parse</a>`, `href="./loki/tail"`, `href="../api/v1/components/loki"`},
		"parse":  {`data-health="degraded"`, "token=&lt;redacted&gt;", `<td>too_large</td>`, `<a href="./logs">logs</a>`, `<a href="./loki">loki</a>`},
		"docker": {"Targets (1)", `__meta_docker_container_label_db_password=&#34;&lt;redacted&gt;&#34;`, `__address__=&#34;web:80&#34;`},
		"logs":   {"Read positions", "https://reader:&lt;redacted&gt;@files.example/app.log", "offset="},
		"idle":   {`data-health="unknown"`, "No targets."},
	}
	for name, wants := range cases {
		rec := get(t, h, "/component/"+name)
		if rec.Code != 200 {
			t.Fatalf("GET /component/%s = %d", name, rec.Code)
		}
		body := rec.Body.String()
		for _, w := range wants {
			if !strings.Contains(body, w) {
				t.Errorf("/component/%s lacks %q", name, w)
			}
		}
		noSecrets(t, "/component/"+name, body)
	}
	if rec := get(t, h, "/component/nope"); rec.Code != 404 || !strings.Contains(rec.Body.String(), "No component") {
		t.Errorf("GET /component/nope = %d", rec.Code)
	}
}

func TestHandlerAPI(t *testing.T) {
	p, _ := testPipeline(t)
	h := debugui.Handler(p)

	type comp struct {
		Name        string              `json:"name"`
		Kind        string              `json:"kind"`
		Health      string              `json:"health"`
		LastError   string              `json:"last_error"`
		Inputs      []string            `json:"inputs"`
		Outputs     []string            `json:"outputs"`
		Dropped     map[string]uint64   `json:"dropped"`
		ItemsOut    uint64              `json:"items_out"`
		QueueCap    int                 `json:"queue_cap"`
		LastOK      *time.Time          `json:"last_ok"`
		TargetCount int                 `json:"target_count"`
		Targets     []map[string]string `json:"targets"`
		Positions   map[string]string   `json:"positions"`
	}
	rec := get(t, h, "/api/v1/components")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/components = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	noSecrets(t, "/api/v1/components", rec.Body.String())
	var list struct {
		Ready      bool   `json:"ready"`
		Reason     string `json:"reason"`
		Components []comp `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.Ready || !strings.Contains(list.Reason, `sink "loki" is failing`) {
		t.Errorf("ready %v reason %q", list.Ready, list.Reason)
	}
	var names []string
	for _, c := range list.Components {
		names = append(names, c.Name+":"+c.Health)
		if c.Targets != nil || c.Positions != nil {
			t.Errorf("%s: the list carries details", c.Name)
		}
	}
	if got := strings.Join(names, " "); got != "docker:healthy idle:unknown containers:healthy logs:healthy parse:degraded loki:failing" {
		t.Errorf("components %s", got)
	}

	var c comp
	decode := func(name string) {
		t.Helper()
		c = comp{}
		rec := get(t, h, "/api/v1/components/"+name)
		if rec.Code != 200 {
			t.Fatalf("GET /api/v1/components/%s = %d", name, rec.Code)
		}
		noSecrets(t, "/api/v1/components/"+name, rec.Body.String())
		if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
	}
	decode("docker")
	if c.TargetCount != 1 || c.Targets[0]["__meta_docker_container_label_db_password"] != "<redacted>" || c.Targets[0]["__address__"] != "web:80" {
		t.Errorf("docker targets %v", c.Targets)
	}
	decode("containers")
	if c.Kind != "relabel" || c.Targets[0]["container"] != "web" || strings.Join(c.Inputs, ",") != "docker,idle" || strings.Join(c.Outputs, ",") != "logs" {
		t.Errorf("containers %+v", c)
	}
	decode("logs")
	if c.Positions["https://reader:<redacted>@files.example/app.log"] == "" || c.ItemsOut == 0 || c.LastOK == nil || c.QueueCap == 0 {
		t.Errorf("logs %+v", c)
	}
	decode("parse")
	if c.Dropped["too_large"] == 0 || !strings.Contains(c.LastError, "token=<redacted>") || c.Positions != nil {
		t.Errorf("parse %+v", c)
	}
	decode("loki")
	if c.Health != "failing" || c.LastError != "permanent: push to https://ferry:<redacted>@loki.example/loki/api/v1/push: 401 Unauthorized" {
		t.Errorf("loki %+v", c)
	}
	if rec := get(t, h, "/api/v1/components/nope"); rec.Code != 404 {
		t.Errorf("unknown component: %d", rec.Code)
	}

	rec = get(t, h, "/api/v1/health")
	var health struct {
		Ready      bool           `json:"ready"`
		Components map[string]int `json:"components"`
		Failing    []string       `json:"failing"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &health); err != nil {
		t.Fatal(err)
	}
	if health.Ready || health.Components["healthy"] != 3 || health.Components["failing"] != 1 || strings.Join(health.Failing, ",") != "loki" {
		t.Errorf("health %+v", health)
	}
}

func TestHandlerReadyAndHealthy(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	pipeline.To(b, "out", fake, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{Items: []ferry.Entry{{Line: "x"}}}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	h := debugui.Handler(p)
	if rec := get(t, h, "/-/ready"); rec.Code != 503 || rec.Body.String() != "Ferry is not ready: pipeline not started\n" {
		t.Errorf("before Run: %d %q", rec.Code, rec.Body.String())
	}
	if rec := get(t, h, "/-/healthy"); rec.Code != 200 || rec.Body.String() != "Ferry is healthy.\n" {
		t.Errorf("healthy: %d %q", rec.Code, rec.Body.String())
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec := get(t, h, "/-/ready"); rec.Code != 200 || rec.Body.String() != "Ferry is ready.\n" {
		t.Errorf("after Run: %d %q", rec.Code, rec.Body.String())
	}

	failing, _ := testPipeline(t)
	rec := get(t, debugui.Handler(failing), "/-/ready")
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `sink "loki" is failing: permanent: push to https://ferry:<redacted>@loki.example`) {
		t.Errorf("failing sink: %d %q", rec.Code, rec.Body.String())
	}
	noSecrets(t, "/-/ready", rec.Body.String())
}

func TestHandlerTail(t *testing.T) {
	p, _ := testPipeline(t)
	srv := httptest.NewServer(debugui.Handler(p))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/api/v1/components/logs/tail?lines=3")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || len(lines) != 5 ||
		!strings.HasPrefix(lines[0], `# tail of "logs": up to 3 lines in 30s`) || lines[4] != "# line limit of 3 reached" {
		t.Fatalf("tail:\n%s", body)
	}
	if !strings.Contains(lines[1], `, __meta_docker_container_label_db_password="<redacted>", `) || !strings.HasSuffix(lines[1], "GET /login?user=bob&password=<redacted> 200") {
		t.Errorf("tail line %q", lines[1])
	}
	noSecrets(t, "tail", string(body))

	// Server-sent events, ended by time on a component that passes nothing.
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/components/idle/tail?seconds=1", nil)
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || time.Since(start) > 5*time.Second ||
		!strings.HasPrefix(string(body), "event: start\ndata: tail of \"idle\"") ||
		!strings.HasSuffix(string(body), "event: end\ndata: time limit of 1s reached after 0 lines\n\n") {
		t.Errorf("sse tail (%v):\n%s", time.Since(start), body)
	}

	// SSE data lines of a busy component.
	resp, err = http.Get(srv.URL + "/api/v1/components/parse/tail?format=sse&lines=2&every=2&items=1")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var data []string
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, l)
		}
	}
	resp.Body.Close()
	if len(data) != 4 || !strings.Contains(data[1], "password=<redacted>") || data[3] != "line limit of 2 reached" {
		t.Errorf("sse data %q", data)
	}

	if resp, err := http.Get(srv.URL + "/api/v1/components/nope/tail"); err != nil || resp.StatusCode != 404 {
		t.Errorf("tail of unknown component: %v %v", resp.StatusCode, err)
	}

	// Tails are bounded: the fifth at once is refused, and a client that
	// goes away ends its tail.
	ctx, cancel := context.WithCancel(context.Background())
	var open []*http.Response
	for range 4 {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/components/idle/tail?seconds=60", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, resp)
	}
	resp, err = http.Get(srv.URL + "/api/v1/components/idle/tail")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("fifth tail: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	cancel()
	for _, r := range open {
		r.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(srv.URL + "/api/v1/components/idle/tail?seconds=1&lines=1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tails of gone clients were not ended")
		}
		time.Sleep(20 * time.Millisecond)
	}

	rec := get(t, debugui.Handler(p), "/component/logs/tail?lines=5")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `data-src="../../api/v1/components/logs/tail?format=sse&amp;every=1&amp;items=10&amp;lines=5&amp;seconds=30"`) {
		t.Errorf("tail page %d:\n%s", rec.Code, rec.Body.String())
	}
	if rec := get(t, debugui.Handler(p), "/component/nope/tail"); rec.Code != 404 {
		t.Errorf("tail page of unknown component: %d", rec.Code)
	}
}

func TestHandlerUnderPrefixAndOddNames(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	pipeline.To(b, "to loki/eu", fake, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{}))
	p, _ := b.Build()
	mux := http.NewServeMux()
	mux.Handle("/debug/ferry/", http.StripPrefix("/debug/ferry", debugui.Handler(p)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/debug/ferry")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/debug/ferry/" {
		t.Fatalf("GET /debug/ferry ended at %s with %d", resp.Request.URL.Path, resp.StatusCode)
	}
	if !strings.Contains(string(body), `href="component/to%20loki%2Feu"`) {
		t.Fatalf("no link to the component:\n%s", body)
	}
	resp, err = http.Get(srv.URL + "/debug/ferry/component/to%20loki%2Feu")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<h1>to loki/eu</h1>") {
		t.Fatalf("component page %d:\n%s", resp.StatusCode, body)
	}
}

// Names are the program's, but the page treats them as text: markup in a
// name stays text, and a name that looks like a URL scheme stays a
// relative link.
func TestHandlerHostileNames(t *testing.T) {
	b := pipeline.New()
	const evil = `javascript:alert(1)"><script>x</script>`
	in := pipeline.FromSource(b, evil, &source.Slice[ferry.Entry]{})
	pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, in)
	p, _ := b.Build()
	h := debugui.Handler(p)
	for _, target := range []string{"/", "/graph.svg", "/component/out", "/component/" + url.PathEscape(evil), "/component/" + url.PathEscape(evil) + "/tail"} {
		rec := get(t, h, target)
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d", target, rec.Code)
		}
		body := rec.Body.String()
		if strings.Contains(body, "<script>x") || strings.Contains(body, `href="javascript:`) || strings.Contains(body, `"><script`) {
			t.Errorf("GET %s lets the name out of its text:\n%s", target, body)
		}
		if !strings.Contains(body, "javascript:alert(1)&#34;&gt;&lt;script&gt;x&lt;/script&gt;") {
			t.Errorf("GET %s does not show the name as text:\n%s", target, body)
		}
	}
	if body := get(t, h, "/component/out").Body.String(); !strings.Contains(body, `<a href="./javascript:alert%281%29%22%3E%3Cscript%3Ex%3C%2Fscript%3E">`) {
		t.Errorf("input link:\n%s", body)
	}
}
