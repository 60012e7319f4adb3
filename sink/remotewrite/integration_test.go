package remotewrite_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// TestRealPrometheusEndToEnd scrapes a real node_exporter with
// scrape.Scraper, remote-writes into a real Prometheus, and compares what
// Prometheus answers with the very samples of the scrape that was sent;
// then removes the target and checks the staleness markers made its series
// vanish. Debian's Prometheus 2.42 receives 1.0 only (a 2.0 sink must fall
// back to 1.0); Prometheus 3 receives 2.0 (the sink must stay on it).
func TestRealPrometheusEndToEnd(t *testing.T) {
	nodeAddr := peers.StartNodeExporter(t)
	for _, tc := range []struct {
		name      string
		start     func(testing.TB, string) *peers.Prometheus
		v, stayOn remotewrite.Version
	}{
		{"prometheus2/v1", peers.StartPrometheus, remotewrite.V1, remotewrite.V1},
		{"prometheus2/v2-falls-back", peers.StartPrometheus, remotewrite.V2, remotewrite.V1},
		{"prometheus3/v2", peers.StartPrometheus3, remotewrite.V2, remotewrite.V2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prom := tc.start(t, "")
			v := tc.v
			job := "node-v" + v.String()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sc := &scrape.Scraper{Job: job, Interval: time.Second, Timeout: time.Second}
			rw := &remotewrite.Sink{
				URL:               prom.WriteURL(),
				Version:           v,
				BatchSendDeadline: 100 * time.Millisecond,
				ExternalLabels:    labels.FromStrings("agent", "ferry"),
				Metadata:          sc.Metadata,
			}
			for _, c := range []ferry.Starter{sc, rw} {
				if err := c.Start(ctx, ferry.NopReporter()); err != nil {
					t.Fatal(err)
				}
			}
			targets := make(chan []labels.Labels, 1)
			out := make(chan ferry.Batch[ferry.Sample], 4)
			runDone := make(chan error, 1)
			go func() { runDone <- sc.Run(ctx, targets, out) }()
			deadAddr := peers.FreeAddr(t) // nothing listens there: up must be 0
			targets <- []labels.Labels{labels.FromStrings("__address__", nodeAddr), labels.FromStrings("__address__", deadAddr)}

			// Forward batches to the sink, keeping a copy of the first
			// healthy scrape and waiting for its acknowledgement.
			var first []ferry.Sample
			acked := make(chan error, 1)
			for first == nil {
				select {
				case b := <-out:
					up := false
					for _, s := range b.Items {
						if s.Labels.Get("__name__") == "up" && s.V == 1 && s.Labels.Get("instance") == nodeAddr {
							up = true
						}
					}
					if up {
						first = append([]ferry.Sample(nil), b.Items...)
						b.Ack = ferry.NewAck(func(err error) { acked <- err })
					}
					if err := rw.Send(ctx, b); err != nil {
						t.Fatal(err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("no successful scrape: %+v", sc.Targets())
				}
			}
			select {
			case err := <-acked:
				if err != nil {
					t.Fatalf("remote write of the scrape: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("scrape not acknowledged")
			}
			// Keep forwarding in the background.
			fwdDone := make(chan struct{})
			go func() {
				defer close(fwdDone)
				for {
					select {
					case b := <-out:
						rw.Send(ctx, b)
					case <-ctx.Done():
						return
					}
				}
			}()

			at := time.UnixMilli(first[0].T)
			// Every series of the scrape arrived, with its value at its
			// timestamp.
			want := map[string]float64{}
			for _, s := range first {
				if math.Float64bits(s.V) == value.StaleNaN {
					continue
				}
				want[s.Labels.String()] = s.V
			}
			res := prom.Query(t, `{job="`+job+`",instance="`+nodeAddr+`"}`, at)
			if len(res) != len(want) {
				t.Errorf("Prometheus has %d series of job %s at %v, the scrape had %d", len(res), job, at, len(want))
			}
			checked, mismatched := 0, 0
			for _, r := range res {
				if r.Metric["agent"] != "ferry" || r.Metric["instance"] != nodeAddr {
					t.Fatalf("labels %v", r.Metric)
				}
				delete(r.Metric, "agent")
				ls := labels.FromMap(r.Metric)
				w, ok := want[ls.String()]
				if !ok {
					t.Errorf("unexpected series %s", ls)
					continue
				}
				ts, _ := r.Value[0].(float64)
				got := r.Float(t)
				checked++
				if int64(math.Round(ts*1000)) != at.UnixMilli() || (got != w && !(math.IsNaN(got) && math.IsNaN(w))) {
					mismatched++
					if mismatched < 5 {
						t.Errorf("%s = %v @%v, scraped %v @%v", ls, got, ts, w, at.UnixMilli())
					}
				}
			}
			if checked < 100 {
				t.Errorf("only %d node_exporter series checked", checked)
			}
			for _, q := range []string{`up{job="` + job + `",instance="` + nodeAddr + `"}`, `node_exporter_build_info{job="` + job + `"}`} {
				r := prom.Query(t, q, at)
				if len(r) != 1 || r[0].Float(t) != 1 || r[0].Metric["instance"] != nodeAddr {
					t.Errorf("%s = %v", q, r)
				}
			}
			if r := prom.Query(t, `node_cpu_seconds_total{job="`+job+`",mode="idle"}`, at); len(r) == 0 {
				t.Error("no node_cpu_seconds_total")
			}
			if r := prom.Query(t, `scrape_samples_scraped{job="`+job+`",instance="`+nodeAddr+`"}`, at); len(r) != 1 || r[0].Float(t) < 100 {
				t.Errorf("scrape_samples_scraped = %v", r)
			}

			// The unreachable target is down, with its error kept.
			poll.Until(t, func() bool {
				r := prom.Query(t, `up{job="`+job+`",instance="`+deadAddr+`"}`, time.Now())
				return len(r) == 1 && r[0].Float(t) == 0
			}, "up 0 of the unreachable target")
			for _, st := range sc.Targets() {
				if st.Labels.Get("instance") == deadAddr && (st.Health != ferry.Failing || st.LastError == nil) {
					t.Errorf("dead target status %+v", st)
				}
			}

			// Remove the targets: staleness markers end every series.
			targets <- nil
			poll.Until(t, func() bool { return len(prom.Query(t, `up{job="`+job+`"}`, time.Now())) == 0 },
				"up to go stale after the targets went away")
			if r := prom.Query(t, `{job="`+job+`"}`, time.Now()); len(r) != 0 {
				t.Errorf("%d series not stale after the target went away", len(r))
			}
			if got := rw.ProtocolVersion(); got != tc.stayOn {
				t.Errorf("the sink speaks %v after the run, want %v", got, tc.stayOn)
			}
			cancel()
			<-fwdDone
			if err := <-runDone; err != nil {
				t.Errorf("scraper: %v", err)
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			if err := rw.Close(cctx); err != nil {
				t.Errorf("close: %v", err)
			}
			t.Logf("%s: %d series compared with Prometheus, %d differ", job, checked, mismatched)
		})
	}
}

// TestRealPrometheusBigTargetSpread sends the pages of one big target, one
// a second of sample time, into a real Prometheus 3 through a proxy that
// holds every request for 20 ms, as a distant receiver's round trip would.
// Prometheus refuses a sample older than its series' last one (no
// out_of_order_time_window), so a series sent out of order would come back
// as an error: the target must be spread over concurrent requests, and
// every sample of every page must be stored.
func TestRealPrometheusBigTargetSpread(t *testing.T) {
	prom := peers.StartPrometheus3(t, "")
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: prom.Addr})
	var inFlight, most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond) // the round trip to a distant receiver
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	rw := &remotewrite.Sink{URL: srv.URL + "/api/v1/write", MaxShards: 8, MaxSamplesPerSend: 500,
		BatchSendDeadline: 10 * time.Millisecond, ReshardInterval: 200 * time.Millisecond}
	ctx := context.Background()
	if err := rw.Start(ctx, ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	const series, maxPages = 2000, 240
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		pages  int
	)
	for ; most.Load() < 3; pages++ {
		if pages == maxPages {
			t.Fatalf("%d pages of one target never made more than %d requests at once", pages, most.Load())
		}
		page := make([]ferry.Sample, series)
		for i := range page {
			page[i] = ferry.Sample{
				Labels: labels.FromStrings("__name__", "ferry_big_target_info", "instance", "ksm:8080", "job", "kube-state-metrics", "pod", "pod-"+strconv.Itoa(i)),
				T:      t0.Add(time.Duration(pages) * time.Second).UnixMilli(),
				V:      float64(pages),
			}
		}
		wg.Add(1)
		err := rw.Send(ctx, ferry.NewBatch(page, func(err error) {
			if err != nil {
				failed.Add(1)
				t.Errorf("page acknowledged with %v", err)
			}
			wg.Done()
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rw.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d of %d pages failed", failed.Load(), pages)
	}
	at := t0.Add(time.Duration(pages-1) * time.Second)
	res := prom.Query(t, fmt.Sprintf(`count_over_time(ferry_big_target_info{job="kube-state-metrics"}[%ds])`, pages), at)
	if len(res) != series {
		t.Fatalf("Prometheus has %d series, want %d", len(res), series)
	}
	for _, r := range res {
		if got := r.Float(t); got != float64(pages) {
			t.Fatalf("%v: %v samples stored, want %d", r.Metric, got, pages)
		}
	}
	t.Logf("%d pages of %d series stored, up to %d requests at once", pages, series, most.Load())
}
