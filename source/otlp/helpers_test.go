package otlp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// consumer takes batches from a pipeline channel and settles them with
// outcome(batch).
type consumer[T any] struct {
	mu    sync.Mutex
	items []T
}

func (c *consumer[T]) got() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]T(nil), c.items...)
}

// runSource runs run with a channel of size buf; with consume, its
// batches are settled by outcome (nil: acknowledged with nil). It returns the channel's
// consumer and a function that stops Run and waits for it.
func runSource[T any](t *testing.T, core *core[T], run func(context.Context, chan<- ferry.Batch[T]) error, buf int, consume bool, outcome func(ferry.Batch[T])) (*consumer[T], func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan ferry.Batch[T], buf)
	c := &consumer[T]{}
	runDone := make(chan error, 1)
	go func() { runDone <- run(ctx, out) }()
	consDone := make(chan struct{})
	if consume {
		go func() {
			defer close(consDone)
			for {
				select {
				case b := <-out:
					c.mu.Lock()
					c.items = append(c.items, b.Items...)
					c.mu.Unlock()
					if outcome != nil {
						outcome(b)
					} else {
						b.Done(nil)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	} else {
		close(consDone)
	}
	poll.Until(t, core.outlet.Running, "Run to start")
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-runDone:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
		<-consDone
	}
	t.Cleanup(stop)
	return c, stop
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, ctype, encoding string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func kv(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

func kvs(pairs ...string) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, kv(pairs[i], str(pairs[i+1])))
	}
	return out
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// anyReceiver is what LogsReceiver and MetricsReceiver share, for tests.
type anyReceiver interface {
	http.Handler
	Start(context.Context, ferry.Reporter) error
	Close(context.Context) error
}

// startReceiver starts r with rep (a no-op one when nil), closes it when
// the test ends and returns the URL of path on a test server serving it.
func startReceiver(t *testing.T, r anyReceiver, rep ferry.Reporter, path string) string {
	t.Helper()
	if rep == nil {
		rep = ferry.NopReporter()
	}
	if err := r.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return newServer(t, r).URL + path
}

func t0Context() context.Context { return context.Background() }

// tryPost posts an OTLP protobuf body and returns the status, 0 when the
// request failed.
func tryPost(url string, body []byte) int {
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
