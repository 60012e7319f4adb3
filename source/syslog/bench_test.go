package syslog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink"
)

// benchMessages returns n newline-terminated RFC 5424 messages, like
// those of syslogmsg's BenchmarkSyslogParse.
func benchMessages(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<165>1 2026-12-04T10:11:12.%06dZ web-%02d.example.com nginx %d ID47 [exampleSDID@32473 iut="3" eventSource="Application"] GET /api/v1/items?page=%d 200 1532 "-" "curl/8.5.0"`+"\n", i%1000000, i%16, 1000+i%50, i)
	}
	return b.Bytes()
}

// BenchmarkSyslogTCP sends RFC 5424 messages over one TCP connection to a
// pipeline of a syslog Source and a discarding sink, paired in every
// iteration with a baseline: the same bytes sent over another connection
// to a listener that only splits lines (bufio.Scanner), the raw limit of
// loopback TCP and a line split. It reports both rates, per wall-clock
// second and per CPU second of the process (sender included), and share =
// syslog rate / baseline rate.
func BenchmarkSyslogTCP(b *testing.B) {
	const n = 20000
	data := benchMessages(n)

	// The baseline: a listener that counts lines and reports every n.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	baseDone := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		lines := 0
		for sc.Scan() {
			if lines++; lines == n {
				lines = 0
				baseDone <- struct{}{}
			}
		}
	}()
	baseConn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer baseConn.Close()

	// The subject: a pipeline from a syslog Source to a counting sink.
	src := &Source{Addr: "127.0.0.1:0", DisableHostnameLookup: true}
	counted := &countingSink{every: n, done: make(chan struct{})}
	pb := pipeline.New()
	pipeline.To(pb, "discard", counted, pipeline.FromSource(pb, "syslog", src))
	p, err := pb.Build()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	if !poll.Wait(10*time.Second, func() bool { return src.LocalAddr() != nil }) {
		b.Fatal("the pipeline did not start the source")
	}
	subConn, err := net.Dial("tcp", src.LocalAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer subConn.Close()

	var baseWall, baseCPU, subWall, subCPU time.Duration
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		w0, c0 := time.Now(), cpuclock.Process()
		if _, err := baseConn.Write(data); err != nil {
			b.Fatal(err)
		}
		<-baseDone
		w1, c1 := time.Now(), cpuclock.Process()
		if _, err := subConn.Write(data); err != nil {
			b.Fatal(err)
		}
		<-counted.done
		w2, c2 := time.Now(), cpuclock.Process()
		baseWall, baseCPU = baseWall+w1.Sub(w0), baseCPU+c1-c0
		subWall, subCPU = subWall+w2.Sub(w1), subCPU+c2-c1
	}
	lines := float64(n * b.N)
	if baseCPU > 0 && subCPU > 0 {
		b.ReportMetric(lines/baseWall.Seconds(), "bufio-lines/s")
		b.ReportMetric(lines/baseCPU.Seconds(), "bufio-lines/cpu-s")
		b.ReportMetric(lines/subWall.Seconds(), "syslog-lines/s")
		b.ReportMetric(lines/subCPU.Seconds(), "syslog-lines/cpu-s")
		b.ReportMetric(baseCPU.Seconds()/subCPU.Seconds(), "share-cpu")
	}
}

// countingSink discards entries and signals every time it has seen
// every more.
type countingSink struct {
	sink.Discard[ferry.Entry]
	n, every int
	done     chan struct{}
}

func (s *countingSink) Send(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
	s.n += len(b.Items)
	for s.n >= s.every {
		s.n -= s.every
		s.done <- struct{}{}
	}
	b.Done(nil)
	return nil
}
