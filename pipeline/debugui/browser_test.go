package debugui_test

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/pipeline/debugui"
)

// Every health colour, the component pages with targets and positions, and
// the live tail's script, in a real browser.
func TestHandlerInChromium(t *testing.T) {
	bin := peers.Chromium(t)
	p, _ := testPipeline(t)
	srv := httptest.NewServer(debugui.Handler(p))
	defer srv.Close()

	dom := peers.Browse(t, bin, srv.URL+"/?refresh=0", "--dump-dom")
	for name, color := range wantColors {
		st, _ := p.Component(name)
		re := regexp.MustCompile(`data-component="` + name + `" data-kind="` + string(st.Kind) + `" data-health="` + st.Health.String() +
			`" data-fill="` + color + `">\s*<title>[^<]*</title>\s*<rect [^>]*stroke="` + color + `"`)
		if !re.MatchString(dom) {
			t.Errorf("the graph does not show %s as %s (%s)", name, st.Health, color)
		}
	}
	noSecrets(t, "DOM", dom)

	// The tail page's script streams lines into the page.
	tail := peers.Browse(t, bin, srv.URL+"/component/logs/tail?lines=3", "--dump-dom", "--virtual-time-budget=5000")
	if !strings.Contains(tail, "line limit of 3 reached") || strings.Count(tail, "password=&lt;redacted&gt;") != 3 {
		t.Errorf("tail page after streaming:\n%s", tail)
	}
	noSecrets(t, "tail DOM", tail)

	dir := artifactsDir(t)
	for file, page := range map[string]string{
		"pipeline-all-health.png":   "/?refresh=0",
		"pipeline-discoverer.png":   "/component/docker?refresh=0",
		"pipeline-source.png":       "/component/logs?refresh=0",
		"pipeline-processor.png":    "/component/parse?refresh=0",
		"pipeline-tail-logs.png":    "/component/logs/tail?lines=8",
		"pipeline-failing-sink.png": "/component/loki?refresh=0",
	} {
		path := filepath.Join(dir, file)
		os.Remove(path)
		args := []string{"--screenshot=" + path, "--window-size=1200,800"}
		if strings.Contains(page, "/tail") {
			args = append(args, "--virtual-time-budget=5000")
		}
		peers.Browse(t, bin, srv.URL+page, args...)
		if b, err := os.ReadFile(path); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s: %v", path, err)
		}
		t.Logf("screenshot of %s: %s", page, path)
	}
}

// The state of a disk buffer on its page and in the index, in a real
// browser, with screenshots of both.
func TestBufferStateInChromium(t *testing.T) {
	bin := peers.Chromium(t)
	p, d := bufferPipeline(t, 7)
	srv := httptest.NewServer(debugui.Handler(p))
	defer srv.Close()

	st := d.Stats()
	dom := peers.Browse(t, bin, srv.URL+"/component/loki?refresh=0", "--dump-dom")
	for _, want := range []string{`data-key="records" data-value="7"`, `data-key="bytes" data-value="` + strconv.FormatInt(st.Bytes, 10) + `"`, `data-key="oldest_record_age"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the buffer's page in the browser lacks %s:\n%s", want, dom)
		}
	}
	dir := artifactsDir(t)
	for file, page := range map[string]string{
		"pipeline-buffer.png":       "/component/loki?refresh=0",
		"pipeline-buffer-index.png": "/?refresh=0",
	} {
		path := filepath.Join(dir, file)
		os.Remove(path)
		peers.Browse(t, bin, srv.URL+page, "--screenshot="+path, "--window-size=1200,900")
		if b, err := os.ReadFile(path); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s: %v", path, err)
		}
		t.Logf("screenshot of %s: %s", page, path)
	}
}

// artifactsDir returns the directory for screenshots: FERRY_ARTIFACTS_DIR,
// or ferry-artifacts in the temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FERRY_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ferry-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
