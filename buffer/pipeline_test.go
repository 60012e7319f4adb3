package buffer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/buffer"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// lokiReceiver is a fake Loki push endpoint (JSON encoding) that records
// lines, or answers 503 while down.
type lokiReceiver struct {
	*httptest.Server
	down  atomic.Bool
	mu    sync.Mutex
	lines map[string]int
}

func newLokiReceiver(t *testing.T) *lokiReceiver {
	r := &lokiReceiver{lines: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			io.Copy(io.Discard, req.Body)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Streams []struct {
				Values [][]any `json:"values"`
			} `json:"streams"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, s := range body.Streams {
			for _, v := range s.Values {
				r.lines[v[1].(string)]++
			}
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *lokiReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lines)
}

func fastLoki(url string) *loki.Sink {
	return &loki.Sink{URL: url + "/loki/api/v1/push", Encoding: loki.JSON, BatchWait: 10 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxRetries: 2}
}

// TestOneBufferPerDestination: two Loki sinks fed by one stream, each behind
// its own buffer. One receiver is down; the other receives every line
// meanwhile. When the first comes back, its buffer delivers its backlog,
// after a restart of the program.
func TestOneBufferPerDestination(t *testing.T) {
	up, down := newLokiReceiver(t), newLokiReceiver(t)
	down.down.Store(true)
	dir := t.TempDir()
	const n = 3000
	var text strings.Builder
	for i := range n {
		fmt.Fprintf(&text, "line %05d\n", i)
	}
	run := func(src string) (*buffer.Disk[ferry.Entry], *buffer.Disk[ferry.Entry]) {
		b := pipeline.New(pipeline.WithDrainTimeout(3 * time.Second))
		logs := pipeline.FromSource(b, "lines", &source.Reader{R: strings.NewReader(src), Labels: labels.FromStrings("job", "t")})
		a := buffer.Wrap(filepath.Join(dir, "a"), fastLoki(up.URL), buffer.Options{MaxBytes: 1 << 20, SyncInterval: 10 * time.Millisecond})
		c := buffer.Wrap(filepath.Join(dir, "b"), fastLoki(down.URL), buffer.Options{MaxBytes: 1 << 20, SyncInterval: 10 * time.Millisecond,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		pipeline.To(b, "loki-a", a, logs)
		pipeline.To(b, "loki-b", c, logs)
		p, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return a, c
	}
	// The source ends once both buffers made its lines durable; Run
	// returns after the sinks drained as far as they could.
	a, c := run(text.String())
	if got := up.count(); got != n {
		t.Fatalf("the healthy receiver got %d of %d lines while the other was down; %+v", got, n, a.Stats())
	}
	if down.count() != 0 {
		t.Fatal("the down receiver received")
	}
	if s := c.Stats(); s.Items != n || s.Retries == 0 {
		t.Fatalf("buffer of the down receiver: %+v; want all %d items waiting, retried", s, n)
	}
	if s := a.Stats(); s.Items != 0 {
		t.Fatalf("buffer of the healthy receiver: %+v", s)
	}
	// The receiver is back; the program starts again, with no new input.
	down.down.Store(false)
	run("")
	if got := down.count(); got != n {
		t.Fatalf("the recovered receiver got %d of %d lines", got, n)
	}
	if got := up.count(); got != n {
		t.Fatalf("the healthy receiver got %d lines, want %d (no replay)", got, n)
	}
}

// TestPipelineMetrics: a buffer given to pipeline.To shows in the
// pipeline's metrics.
func TestPipelineMetrics(t *testing.T) {
	r := newLokiReceiver(t)
	b := pipeline.New()
	logs := pipeline.FromSource(b, "lines", &source.Reader{R: strings.NewReader("a\nb\n"), Labels: labels.FromStrings("job", "t")})
	d := buffer.Wrap(t.TempDir(), fastLoki(r.URL), buffer.Options{Name: "loki", MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond})
	pipeline.To(b, "loki", d, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	mch := make(chan prometheus.Metric, 1000)
	go func() { p.Collect(mch); close(mch) }()
	for m := range mch {
		names = append(names, m.Desc().String())
	}
	if all := strings.Join(names, "\n"); !strings.Contains(all, `"ferry_buffer_written_records_total"`) || !strings.Contains(all, `{buffer="loki"}`) {
		t.Fatalf("buffer metrics missing from the pipeline's: %v", names)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A Disk reports its state to views of the pipeline.
var _ pipeline.StateReporter = (*buffer.Disk[ferry.Entry])(nil)
