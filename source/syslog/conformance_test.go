package syslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

const conformanceMessages = 40

func TestConformanceTCP(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New: func(t *testing.T) source.Source[ferry.Entry] {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// The connection waits in the backlog until the Source runs.
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			for i := 0; i < conformanceMessages; i++ {
				fmt.Fprintf(c, "<14>1 - h app - - - tcp %d\n", i)
			}
			return &Source{Listener: ln, BatchSize: 7, DisableHostnameLookup: true}
		},
		Want: conformanceMessages,
	})
}

func TestConformanceUDP(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New: func(t *testing.T) source.Source[ferry.Entry] {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// The datagrams wait in the socket's buffer until the Source
			// runs.
			c, err := net.Dial("udp", pc.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := 0; i < conformanceMessages; i++ {
				fmt.Fprintf(c, "<14>1 - h app - - - udp %d", i)
			}
			return &Source{Protocol: UDP, PacketConn: pc, BatchSize: 7, DisableHostnameLookup: true}
		},
		Want: conformanceMessages,
	})
}

// A Close without Start closes nothing and is final too (the harness
// checks the rest of the lifecycle).
func TestCloseWithoutStart(t *testing.T) {
	ctx := context.Background()
	s := &Source{Addr: "127.0.0.1:0"}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, nil); !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ferry.ErrClosed", err)
	}
}

// metric is the value of the metric of c named name with the given
// labels ("name=value").
func metric(t *testing.T, c prometheus.Collector, name string, want ...string) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var got []prometheus.Metric
	for m := range ch {
		if !bytes.Contains([]byte(m.Desc().String()), []byte(`fqName: "`+name+`"`)) {
			continue
		}
		got = append(got, m)
	}
	for _, m := range got {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		lv := map[string]string{}
		for _, l := range pb.GetLabel() {
			lv[l.GetName()] = l.GetValue()
		}
		ok := true
		for _, w := range want {
			n, v, _ := strings.Cut(w, "=")
			if lv[n] != v {
				ok = false
			}
		}
		if ok {
			return testutil.ToFloat64(single{m})
		}
	}
	t.Fatalf("no metric %s with %v", name, want)
	return 0
}

// single is a Collector of one metric.
type single struct{ m prometheus.Metric }

func (s single) Describe(ch chan<- *prometheus.Desc) { ch <- s.m.Desc() }
func (s single) Collect(ch chan<- prometheus.Metric) { ch <- s.m }

// The metrics count messages, parse errors, drops by reason and
// connections, under the source's name.
func TestMetrics(t *testing.T) {
	r := startSource(t, &Source{Name: "edge", MaxConnections: 1, MaxMessageLength: 64, DropMalformed: true, DisableHostnameLookup: true}, 16)
	if probs, err := testutil.CollectAndLint(r.s); err != nil || len(probs) > 0 {
		t.Fatal(probs, err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r.s)
	c := dial(t, "tcp", r.s.LocalAddr())
	fmt.Fprintf(c, "<14>1 - h app - - - one\n")
	fmt.Fprintf(c, "<999>broken\n")
	fmt.Fprintf(c, "<14>1 - h app - - - %s\n", bytes.Repeat([]byte("x"), 100))
	r.collect(t, 2, 10*time.Second)
	waitFor(t, "open connection", func() bool { return r.s.Stats().Open == 1 })
	c2 := dial(t, "tcp", r.s.LocalAddr())
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection not closed")
	}
	waitFor(t, "rejected connection", func() bool { return r.s.Stats().Rejected == 1 })
	for _, x := range []struct {
		name string
		lv   []string
		want float64
	}{
		{"ferry_syslog_messages_received_total", nil, 3},
		{"ferry_syslog_parse_errors_total", nil, 1},
		{"ferry_syslog_dropped_messages_total", []string{"reason=malformed"}, 1},
		{"ferry_syslog_dropped_messages_total", []string{"reason=too_long_truncated"}, 1},
		{"ferry_syslog_dropped_messages_total", []string{"reason=kernel_buffer_full"}, 0},
		{"ferry_syslog_connections_open", nil, 1},
		{"ferry_syslog_connections_accepted_total", nil, 1},
		{"ferry_syslog_connections_rejected_total", nil, 1},
	} {
		if got := metric(t, r.s, x.name, append(x.lv, "source=edge")...); got != x.want {
			t.Errorf("%s%v = %v, want %v", x.name, x.lv, got, x.want)
		}
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// A pipeline collects the Source's metrics with its own.
func TestMetricsThroughPipeline(t *testing.T) {
	src := &Source{Addr: "127.0.0.1:0", Name: "piped", DisableHostnameLookup: true}
	counted := &countingSink{every: 1, done: make(chan struct{}, 1)}
	pb := pipeline.New()
	pipeline.To(pb, "discard", counted, pipeline.FromSource(pb, "syslog", src))
	p, err := pb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "source started", func() bool { return src.LocalAddr() != nil })
	c := dial(t, "tcp", src.LocalAddr())
	fmt.Fprintf(c, "<14>1 - h app - - - one\n")
	<-counted.done
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	n, err := testutil.GatherAndCount(reg, "ferry_syslog_messages_received_total", "ferry_syslog_connections_accepted_total")
	if err != nil || n != 2 {
		t.Fatalf("gathered %d syslog metrics (%v), want 2", n, err)
	}
	if got := metric(t, src, "ferry_syslog_messages_received_total", "source=piped"); got != 1 {
		t.Errorf("messages_received_total = %v, want 1", got)
	}
}
