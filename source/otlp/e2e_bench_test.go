package otlp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/conntest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/lokipush"
	"github.com/ferrydev/ferry/source/otlp"
)

const e2eRecords = 1000 // per request: 10 streams of 100 records

func e2eLine(i int) string {
	line := fmt.Sprintf("level=info caller=handler.go:%d method=GET path=/api/v1/users status=200 duration=%dus user=%08x msg=\"request served\"", i, i*37, i*7919)
	for len(line) < 200 {
		line += " pad=x"
	}
	return line[:200]
}

// e2eOTLP is an OTLP logs request; every request of a run has its own
// timestamps, so that Loki's order rules would hold.
func e2eOTLP(base time.Time) []byte {
	sv := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	ld := &logspb.LogsData{}
	for s := range 10 {
		rl := &logspb.ResourceLogs{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			{Key: "service.name", Value: sv(fmt.Sprintf("service-%d", s))}, {Key: "host.name", Value: sv("node-1")}}}}
		sl := &logspb.ScopeLogs{}
		for i := range e2eRecords / 10 {
			sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{TimeUnixNano: uint64(base.Add(time.Duration(i)).UnixNano()), SeverityText: "INFO", Body: sv(e2eLine(i))})
		}
		rl.ScopeLogs = []*logspb.ScopeLogs{sl}
		ld.ResourceLogs = append(ld.ResourceLogs, rl)
	}
	b, _ := proto.Marshal(ld)
	return b
}

// e2ePush is the same entries as a Loki push request (snappy protobuf).
func e2ePush(base time.Time) []byte {
	var req push.PushRequest
	for s := range 10 {
		st := push.Stream{Labels: fmt.Sprintf(`{service_name="service-%d"}`, s)}
		for i := range e2eRecords / 10 {
			st.Entries = append(st.Entries, push.Entry{Timestamp: base.Add(time.Duration(i)), Line: e2eLine(i),
				StructuredMetadata: push.LabelsAdapter{{Name: "host_name", Value: "node-1"}, {Name: "severity_text", Value: "INFO"}}})
		}
		req.Streams = append(req.Streams, st)
	}
	raw, _ := req.Marshal()
	return snappy.Encode(nil, raw)
}

// BenchmarkEndToEnd measures lines/s from OTLP/HTTP clients through
// source/otlp (which answers once the Loki sink delivered) and the Loki
// sink to a receiver that discards what it gets, next to the same pipeline
// fed by the Loki push receiver (lokipush with WaitForAck) in the same run.
func BenchmarkEndToEnd(b *testing.B) {
	null := conntest.NewNull(b)

	run := func(b *testing.B, src source.Source[ferry.Entry], url func() string, ctype string, body []byte) {
		ctx, cancel := context.WithCancel(context.Background())
		pb := pipeline.New(pipeline.WithBuffer(4))
		pipeline.To(pb, "loki", &loki.Sink{URL: null.URL, BatchWait: 50 * time.Millisecond}, pipeline.FromSource(pb, "in", src))
		p, err := pb.Build()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		post := func() int {
			req, _ := http.NewRequest(http.MethodPost, url(), bytes.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			resp, err := client.Do(req)
			if err != nil {
				return 0
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		// Wait until the pipeline serves.
		deadline := time.Now().Add(10 * time.Second)
		for s := post(); s/100 != 2; s = post() {
			if time.Now().After(deadline) {
				b.Fatalf("not serving: %d", s)
			}
			time.Sleep(10 * time.Millisecond)
		}
		var retries atomic.Int64
		b.SetParallelism(4) // clients per core
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for s := post(); s/100 != 2; s = post() {
					retries.Add(1)
					time.Sleep(time.Millisecond)
				}
			}
		})
		b.StopTimer()
		lines := float64(b.N) * e2eRecords / b.Elapsed().Seconds()
		b.ReportMetric(lines, "lines/s")
		b.ReportMetric(lines/float64(runtime.GOMAXPROCS(0)), "lines/s/core")
		b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/op")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if null.Requests.Load() == 0 {
			b.Fatal("nothing reached the null receiver")
		}
	}
	base := time.Now()
	b.Run("otlp", func(b *testing.B) {
		srv := &otlp.Server{Addr: "127.0.0.1:0"}
		r := &otlp.LogsReceiver{Server: srv}
		run(b, r, func() string {
			if a := srv.ListenAddr(); a != nil {
				return "http://" + a.String() + otlp.LogsPath
			}
			return "http://127.0.0.1:1"
		}, "application/x-protobuf", e2eOTLP(base))
	})
	b.Run("baseline-lokipush", func(b *testing.B) {
		ln := httptest.NewUnstartedServer(nil).Listener // a free 127.0.0.1 port
		addr := ln.Addr().String()
		s := &lokipush.Server{Listener: ln, Receiver: lokipush.Receiver{WaitForAck: true}}
		run(b, s, func() string { return "http://" + addr + "/loki/api/v1/push" }, "application/x-protobuf", e2ePush(base))
	})
}
