package faults

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source/lokipush"
)

// TestCardinality pushes entries of ever new label values (a label per
// request id, the classic mistake) through the push receiver and the Loki
// sink: memory stays bounded however many streams go by, and every entry
// is delivered or counted.
func TestCardinality(t *testing.T) {
	streams := 200_000
	if long() {
		streams = 2_000_000
	}
	var got, entries atomic.Int64
	lokiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.Add(int64(len(body)))
		entries.Add(int64(bytes.Count(body, []byte("done"))))
		w.WriteHeader(204)
	}))
	defer lokiSrv.Close()

	rcv := &lokipush.Receiver{}
	b := pipeline.New(pipeline.WithLogger(quietLogger(t)))
	pipeline.To(b, "loki.write", &loki.Sink{URL: lokiSrv.URL, BatchWait: 100 * time.Millisecond, Encoding: loki.JSON}, pipeline.FromSource(b, "loki.source.api", rcv))
	p, stop := runPipeline(t, b)
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	mem := sample(os.Getpid(), 250*time.Millisecond)
	const per = 1000
	now := time.Now().UnixNano()
	for i := 0; i < streams; i += per {
		var body bytes.Buffer
		body.WriteString(`{"streams":[`)
		for j := range per {
			if j > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"stream":{"app":"card","request_id":"%d"},"values":[["%d","request %d done"]]}`, i+j, now+int64(i+j), i+j)
		}
		body.WriteString(`]}`)
		resp, err := http.Post(srv.URL+"/loki/api/v1/push", "application/json", &body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("push: %d", resp.StatusCode)
		}
	}
	var st pipeline.Status
	waitFor(60*time.Second, func() bool {
		st, _ = p.Component("loki.write")
		return entries.Load()+int64(sum(st.Dropped)) >= int64(streams)
	})
	stop()
	mem.finish()
	t.Logf("cardinality: %d unique streams of one entry: sink took %d, Loki got %d (%s), dropped %v; peak heap %s, peak RSS %s (-race)",
		streams, st.ItemsIn, entries.Load(), mib(got.Load()), st.Dropped, mib(int64(mem.heap)), mib(mem.peakRSS))
	if entries.Load()+int64(sum(st.Dropped)) != int64(streams) {
		t.Errorf("%d entries delivered and %d dropped of %d", entries.Load(), sum(st.Dropped), streams)
	}
	if mem.heap > 256<<20 {
		t.Errorf("peak heap %s: memory follows cardinality", mib(int64(mem.heap)))
	}
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
