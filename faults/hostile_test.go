package faults

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/lokipush"
)

// runPipeline builds and runs b until the returned stop is called.
func runPipeline(t testing.TB, b *pipeline.Builder) (*pipeline.Pipeline, func()) {
	t.Helper()
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("pipeline: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("pipeline did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

func dropped(p *pipeline.Pipeline, name string) map[string]uint64 {
	st, _ := p.Component(name)
	return st.Dropped
}

// TestHostileFiles tails files full of random bytes, NUL, invalid UTF-8
// and 10 MiB lines, next to well-behaved lines, through the Loki sink into
// VictoriaLogs: the good lines all arrive, the oversized ones are cut and
// counted, nothing stalls.
func TestHostileFiles(t *testing.T) {
	_, base := victoriaLogs(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var good []string
	var hostile bytes.Buffer
	huge := 0
	for i := range 200 {
		l := fmt.Sprintf("good line %d", i)
		good = append(good, l)
		hostile.WriteString(l + "\n")
		switch i % 5 {
		case 0: // random bytes (may hold \r, NUL, anything but \n)
			b := make([]byte, 1+rng.IntN(4000))
			for j := range b {
				if b[j] = byte(rng.UintN(256)); b[j] == '\n' {
					b[j] = 'n'
				}
			}
			hostile.Write(append(b, '\n'))
		case 1:
			hostile.WriteString("nul\x00\x00\x00in the middle\x00\n")
		case 2:
			hostile.WriteString("invalid \xff\xfe\xc3\x28 utf-8 \xed\xa0\x80\n")
		case 3:
			if huge < 3 {
				huge++
				hostile.WriteString(strings.Repeat("H", 10<<20) + "\n")
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "hostile.log"), hostile.Bytes(), 0o644)

	b := pipeline.New(pipeline.WithLogger(quietLogger(t)))
	m := pipeline.Discover(b, "local.file_match", &file.Discoverer{Patterns: []file.Pattern{{Path: filepath.Join(dir, "*.log"), Labels: labels.FromStrings("job", "hostile")}}})
	logs := pipeline.FromTargets(b, "loki.source.file", &filetail.Source{StartAt: filetail.StartBeginning}, m)
	pipeline.To(b, "loki.write", &loki.Sink{URL: base + "/insert/loki/api/v1/push", BatchWait: 100 * time.Millisecond, MinBackoff: 100 * time.Millisecond}, logs)
	mem := sample(os.Getpid(), 250*time.Millisecond)
	p, stop := runPipeline(t, b)

	want := newTally()
	for _, l := range good {
		want.expect("", l)
	}
	lost, _, _, missing := want.await(t, base, "good", 60*time.Second)
	// Every line is stored, cut if too long: wait for the last ones.
	wantStored := bytes.Count(hostile.Bytes(), []byte("\n"))
	var all []logRow
	waitFor(30*time.Second, func() bool {
		all = queryLogs(t, base, "*", "container")
		return len(all) >= wantStored
	})
	srcDrops, sinkDrops := dropped(p, "loki.source.file"), dropped(p, "loki.write")
	stop()
	mem.finish()
	longest := 0
	for _, r := range all {
		longest = max(longest, len(r.msg))
	}
	t.Logf("hostile files: %d lines (%d good, %d of 10 MiB): stored %d, good lost %d; drops source %v sink %v; longest stored %d B; peak heap %s",
		bytes.Count(hostile.Bytes(), []byte("\n")), len(good), huge, len(all), lost, srcDrops, sinkDrops, longest, mib(int64(mem.heap)))
	if lost > 0 {
		t.Errorf("%d good lines lost, e.g. %q", lost, missing)
	}
	if srcDrops["line_truncated"]+srcDrops["too_long_truncated"] == 0 && len(srcDrops) == 0 {
		t.Errorf("10 MiB lines not counted as dropped or truncated: %v", srcDrops)
	}
	if len(all) != wantStored {
		t.Errorf("%d lines stored, want %d (every line, cut if too long)", len(all), wantStored)
	}
}

// TestHostileContainers runs a container that prints 10 MiB lines next to
// a well-behaved one: the long lines are cut and counted, the other
// container's lines all arrive.
func TestHostileContainers(t *testing.T) {
	c := dockertest.Client(t)
	dockertest.Image(t, c)
	r := startDockerPipeline(t, "")
	goodSpec := dockertest.Spec{Name: fmt.Sprintf("ferry-faults-good-%d", os.Getpid()), Lines: 2000, Sleep: time.Millisecond, Labels: r.labels()}
	// The engine's own rotation would make this test about the daemon: with
	// this machine's json-file defaults (max-size 10m, max-file 3) four 10
	// MiB lines need five files, so under load the first is deleted before
	// anyone reads it. The huge container gets room for all of them.
	hugeSpec := dockertest.Spec{Name: fmt.Sprintf("ferry-faults-huge-%d", os.Getpid()), Lines: 4, Long: 10 << 20, Labels: r.labels(),
		LogOpts: map[string]string{"max-size": "100m", "max-file": "2"}}
	ids := []string{dockertest.Run(t, c, hugeSpec), dockertest.Run(t, c, goodSpec)}
	for _, id := range ids {
		dockertest.WaitExit(t, c, id)
	}
	var want []string
	for i := range goodSpec.Lines {
		want = append(want, goodSpec.Name+"\x00"+dockertest.Line(goodSpec, 1, i))
	}
	lost, dup, missing := r.await(want, 60*time.Second)
	// Each long line is told apart by its start ("r1 l<i> out"), which
	// survives the cut: a duplicate must not stand in for a lost line.
	var huge, longest int
	hugeSeen := map[string]int{}
	waitFor(30*time.Second, func() bool {
		longest = 0
		clear(hugeSeen)
		for _, e := range r.sink.Items() {
			if e.Labels.Get("container") == hugeSpec.Name {
				hugeSeen[strings.SplitN(e.Line, " x", 2)[0]]++
				longest = max(longest, len(e.Line))
			}
		}
		huge = len(hugeSeen)
		return huge == hugeSpec.Lines
	})
	drops := dropped(r.p, "loki.source.docker")
	r.stop(t)
	t.Logf("hostile containers: %d lines of 10 MiB next to %d lines: good lost %d, duplicated %d; long lines delivered %d (longest %d B), drops %v",
		hugeSpec.Lines, goodSpec.Lines, lost, dup, huge, longest, drops)
	if lost > 0 || dup > 0 {
		t.Errorf("good container: lost %d, duplicated %d, e.g. %q", lost, dup, missing)
	}
	if huge != hugeSpec.Lines || longest > 1<<20 {
		t.Errorf("10 MiB lines: %d distinct delivered (want %d, cut), longest %d B: %v", huge, hugeSpec.Lines, longest, hugeSeen)
	}
	for i := range hugeSpec.Lines {
		if l := strings.SplitN(dockertest.Line(hugeSpec, 1, i), " x", 2)[0]; hugeSeen[l] > 1 {
			t.Errorf("10 MiB line %q delivered %d times", l, hugeSeen[l])
		}
	}
	if len(drops) == 0 {
		t.Errorf("cut lines not counted")
	}
}

// hostileTarget serves a bad /metrics page of one kind.
func hostileTarget(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		text := func() { w.Header().Set("Content-Type", "text/plain; version=0.0.4") }
		switch kind {
		case "malformed":
			text()
			io.WriteString(w, "# TYPE x counter\nx{a=\"b\" 1\nfoo bar baz\n{}{}{} 12\n")
		case "random":
			text()
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(rand.UintN(256))
			}
			w.Write(b)
		case "nul":
			text()
			io.WriteString(w, "x\x00y 1\nz{a=\"\x00\"} 2\n")
		case "truncated":
			text()
			w.Header().Set("Content-Length", "100000")
			io.WriteString(w, "# TYPE x counter\nx_total 1\ny_total{a=\"b")
			if h, ok := w.(http.Hijacker); ok {
				if c, _, err := h.Hijack(); err == nil {
					c.Close()
				}
			}
		case "enormous":
			text()
			line := []byte(strings.Repeat("a", 100) + " 1\n")
			for i := 0; i < (200<<20)/len(line); i++ {
				if _, err := w.Write(line); err != nil {
					return
				}
			}
		case "cardinality":
			text()
			for i := range 60000 {
				fmt.Fprintf(w, "series{id=\"%d\"} 1\n", i)
			}
		case "slowloris":
			text()
			w.WriteHeader(200)
			for i := 0; i < 600; i++ {
				if _, err := io.WriteString(w, "#"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		case "gzipbomb":
			text()
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zero := make([]byte, 1<<20)
			for range 1024 {
				if _, err := zw.Write(zero); err != nil {
					return
				}
			}
			zw.Close()
		case "badtype":
			w.Header().Set("Content-Type", "application/x-garbage")
			io.WriteString(w, "x 1\n")
		}
	}
}

// TestHostileScrape scrapes malformed, random, truncated, enormous,
// high-cardinality, gzip-bomb and slowloris targets next to a healthy one:
// each bad target fails with an error (up 0), the healthy one is scraped
// every interval, and memory stays bounded.
func TestHostileScrape(t *testing.T) {
	seq := &seqTarget{}
	good := serve(t, seq)
	kinds := []string{"malformed", "random", "nul", "truncated", "enormous", "cardinality", "slowloris", "gzipbomb", "badtype"}
	addrs := []string{good}
	byAddr := map[string]string{}
	for _, k := range kinds {
		a := serve(t, hostileTarget(k))
		addrs = append(addrs, a)
		byAddr[a] = k
	}
	skip := len(seq.values())
	out := &sinktest.Sink[ferry.Sample]{}
	sc := &scrape.Scraper{Interval: time.Second, Timeout: 900 * time.Millisecond, BodySizeLimit: 16 << 20, SampleLimit: 50000}
	b := pipeline.New(pipeline.WithLogger(quietLogger(t)))
	tg := pipeline.Discover(b, "discovery.static", discovery.Addresses(addrs, "job", "hostile"))
	pipeline.To(b, "sink", out, pipeline.FromTargets(b, "prometheus.scrape", sc, tg))
	mem := sample(os.Getpid(), 250*time.Millisecond)
	_, stop := runPipeline(t, b)
	// Ten scrapes of the hostile targets next to the good one: the load
	// under test.
	mustWait(t, "ten scrapes", 60*time.Second, func() bool { return len(seq.values()) >= skip+10 })
	// Values served from now on may be cut off by the stop.
	served := seq.values()[skip:]
	// Stop once the last of them reached the sink (or give up and count it
	// lost below).
	if len(served) > 0 {
		last := float64(served[len(served)-1])
		waitFor(30*time.Second, func() bool {
			for _, s := range out.Items() {
				if s.V == last && s.Labels.Get("__name__") == "faults_seq" {
					return true
				}
			}
			return false
		})
	}
	stop()
	mem.finish()

	got := map[float64]bool{}
	up := map[string][]float64{}
	for _, s := range out.Items() {
		switch s.Labels.Get("__name__") {
		case "faults_seq":
			got[s.V] = true
		case "up":
			up[s.Labels.Get("instance")] = append(up[s.Labels.Get("instance")], s.V)
		}
	}
	lost := 0
	var missing []int
	for _, v := range served {
		if !got[float64(v)] {
			lost++
			missing = append(missing, v)
		}
	}
	errs := map[string]string{}
	for _, ts := range sc.Targets() {
		if k, ok := byAddr[ts.Labels.Get("instance")]; ok && ts.LastError != nil {
			errs[k] = ts.LastError.Error()
		}
	}
	t.Logf("hostile scrape: good target scraped %d times, lost %d; peak heap %s", len(served), lost, mib(int64(mem.heap)))
	for _, k := range kinds {
		t.Logf("  %-12s error: %.120s", k, errs[k])
	}
	if lost > 0 || len(served) < 8 {
		var goodErr error
		for _, ts := range sc.Targets() {
			if ts.Labels.Get("instance") == good {
				goodErr = ts.LastError
			}
		}
		t.Errorf("healthy target: %d scrapes, %d values lost %v (its last error: %v)", len(served), lost, missing, goodErr)
	}
	for a, k := range byAddr {
		for _, v := range up[a] {
			if v != 0 {
				t.Errorf("%s target: up %v, want 0", k, v)
				break
			}
		}
		if len(up[a]) == 0 {
			t.Errorf("%s target: no up samples", k)
		}
		if errs[k] == "" {
			t.Errorf("%s target: no scrape error reported", k)
		}
	}
	if mem.heap > 512<<20 {
		t.Errorf("peak heap %s", mib(int64(mem.heap)))
	}
}

// TestHostilePush sends malformed pushes to the lokipush receiver between
// good ones: each bad push gets a 4xx, the good ones all arrive, the
// handler never panics.
func TestHostilePush(t *testing.T) {
	out := &sinktest.Sink[ferry.Entry]{}
	rcv := &lokipush.Receiver{MaxBodySize: 1 << 20, MaxDecodedSize: 4 << 20}
	b := pipeline.New(pipeline.WithLogger(quietLogger(t)))
	pipeline.To(b, "sink", out, pipeline.FromSource(b, "loki.source.api", rcv))
	_, stop := runPipeline(t, b)

	var srvLog bytes.Buffer
	var logMu sync.Mutex
	srv := httptest.NewUnstartedServer(rcv)
	srv.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return srvLog.Write(p)
	}), "", 0)
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	url := srv.URL + "/loki/api/v1/push"

	post := func(ct, enc string, body []byte) int {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	bomb := gz(make([]byte, 64<<20))
	now := time.Now().UnixNano()
	bad := []struct {
		name, ct, enc string
		body          []byte
	}{
		{"empty protobuf", "application/x-protobuf", "", nil},
		{"random protobuf", "application/x-protobuf", "", snappy.Encode(nil, []byte("\x0a\xff\xff\xff\xff\x0f garbage"))},
		{"not snappy", "application/x-protobuf", "", []byte("definitely not snappy")},
		{"truncated json", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x"`)},
		{"json wrong types", "application/json", "", []byte(`{"streams":[{"stream":{"a":1},"values":[[1,2,3]]}]}`)},
		{"json bad timestamp", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["yesterday","x"]]}]}`)},
		{"invalid utf-8 label", "application/x-protobuf", "", snappy.Encode(nil, pushProto(`{a="\xff"}`, "x"))},
		{"raw invalid utf-8 label", "application/x-protobuf", "", snappy.Encode(nil, pushProto("{a=\"\xff\"}", "x"))},
		{"unparsable labels", "application/x-protobuf", "", snappy.Encode(nil, pushProto("{a=", "x"))},
		{"bad label name", "application/json", "", []byte(`{"streams":[{"stream":{"1 a":"b"},"values":[["1","x"]]}]}`)},
		{"too large", "application/json", "", bytes.Repeat([]byte("x"), 2<<20)},
		{"gzip bomb", "application/json", "gzip", bomb},
		{"bad gzip", "application/json", "gzip", []byte("not gzip")},
		{"unknown encoding", "application/json", "br", []byte("{}")},
		{"unknown type", "text/html", "", []byte("<html>")},
		{"nul", "application/json", "", []byte("\x00\x00\x00\x00")},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		body := make([]byte, rng.IntN(2000))
		for j := range body {
			body[j] = byte(rng.UintN(256))
		}
		ct := []string{"application/x-protobuf", "application/json", ""}[i%3]
		if ct == "application/x-protobuf" && i%2 == 0 {
			body = snappy.Encode(nil, body)
		}
		bad = append(bad, struct {
			name, ct, enc string
			body          []byte
		}{fmt.Sprintf("random %d", i), ct, "", body})
	}
	codes := map[int]int{}
	goodN := 0
	for i, c := range bad {
		code := post(c.ct, c.enc, c.body)
		codes[code]++
		if code < 400 || code >= 500 {
			// Random bytes may happen to be a valid push; raw invalid
			// UTF-8 inside quotes is turned into U+FFFD (checked below).
			if !strings.HasPrefix(c.name, "random") && !strings.HasPrefix(c.name, "raw") || code != 204 {
				t.Errorf("%s: status %d, want 4xx", c.name, code)
			}
		}
		goodBody := fmt.Sprintf(`{"streams":[{"stream":{"app":"good"},"values":[["%d","good push %d"]]}]}`, now+int64(i), i)
		if code := post("application/json", "", []byte(goodBody)); code != 204 {
			t.Errorf("good push after %s: status %d", c.name, code)
		}
		goodN++
	}
	ok := out.WaitLen(goodN, 10*time.Second)
	stop()
	n := 0
	for _, e := range out.Items() {
		if e.Labels.Get("app") == "good" {
			n++
		}
		e.Labels.Range(func(l labels.Label) {
			if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
				t.Errorf("entry with invalid UTF-8 label passed on: %q", e.Labels)
			}
		})
	}
	logMu.Lock()
	sl := srvLog.String()
	logMu.Unlock()
	t.Logf("hostile push: %d bad pushes (statuses %v), %d good pushes between them: %d arrived", len(bad), codes, goodN, n)
	if !ok || n != goodN {
		t.Errorf("%d of %d good pushes arrived", n, goodN)
	}
	if strings.Contains(sl, "panic") {
		t.Errorf("handler panicked:\n%s", sl)
	}
}

// pushProto encodes a Loki PushRequest of one stream with one entry.
func pushProto(lbls, line string) []byte {
	var ts, entry, stream, req []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(time.Now().Unix()))
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendBytes(entry, ts)
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, line)
	stream = protowire.AppendTag(stream, 1, protowire.BytesType)
	stream = protowire.AppendString(stream, lbls)
	stream = protowire.AppendTag(stream, 2, protowire.BytesType)
	stream = protowire.AppendBytes(stream, entry)
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, stream)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
