package syslog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink"
)

// benchMessages returns n newline-terminated messages of one format.
func benchMessages(format string, n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		switch format {
		case "rfc5424":
			fmt.Fprintf(&b, `<165>1 2026-12-04T10:11:12.%06dZ web-%02d.example.com nginx %d ID47 [exampleSDID@32473 iut="3" eventSource="Application"] GET /api/v1/items?page=%d 200 1532 "-" "curl/8.5.0"`+"\n", i%1000000, i%16, 1000+i%50, i)
		default:
			fmt.Fprintf(&b, "<30>Dec  4 10:11:%02d web-%02d sshd[%d]: Accepted publickey for deploy from 10.0.%d.%d port %d ssh2\n", i%60, i%16, 1000+i%50, i%256, i%200, 40000+i%20000)
		}
	}
	return b.Bytes()
}

// threadCPU returns the CPU time the calling OS thread has used. The
// parse benchmarks lock their goroutine to one thread and report
// messages per CPU second too: on a busy shared machine wall-clock rates
// depend on what else runs, CPU time much less.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuRate locks the goroutine to its thread and returns a function that
// reports n per CPU second under unit.
func cpuRate(b *testing.B) func(n int, unit string) {
	runtime.LockOSThread()
	start := threadCPU()
	return func(n int, unit string) {
		if cpu := threadCPU() - start; cpu > 0 {
			b.ReportMetric(float64(n)/cpu.Seconds(), unit)
		}
		runtime.UnlockOSThread()
	}
}

// BenchmarkSyslogParse measures the parser against the raw limit of the
// same bytes: a bufio.Scanner line split (the "baseline" sub-benchmark).
// It reports messages/s and MB/s; the parser should reach at least 30% of
// the baseline with no allocation.
func BenchmarkSyslogParse(b *testing.B) {
	const n = 10000
	for _, format := range []string{"rfc5424", "rfc3164"} {
		data := benchMessages(format, n)
		b.Run(format+"/baseline-bufio-lines", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			msgs := 0
			report := cpuRate(b)
			for b.Loop() {
				sc := bufio.NewScanner(bytes.NewReader(data))
				for sc.Scan() {
					msgs++
				}
			}
			report(msgs, "messages/cpu-s")
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "messages/s")
		})
		b.Run(format+"/parse", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var p Parser
			var m Message
			msgs := 0
			report := cpuRate(b)
			for b.Loop() {
				sc := bufio.NewScanner(bytes.NewReader(data))
				for sc.Scan() {
					if err := p.Parse(sc.Bytes(), &m); err != nil {
						b.Fatal(err)
					}
					msgs++
				}
			}
			report(msgs, "messages/cpu-s")
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "messages/s")
		})
		b.Run(format+"/parse-and-entry", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			s := &Source{LabelStructuredData: true}
			e := &emitter{s: s, rep: ferry.NopReporter()}
			ci := connInfo{ip: "127.0.0.1"}
			now := time.Now()
			msgs := 0
			report := cpuRate(b)
			for b.Loop() {
				sc := bufio.NewScanner(bytes.NewReader(data))
				for sc.Scan() {
					s.handle(e, sc.Bytes(), false, &ci, now)
					if len(e.batch) == 512 {
						e.batch = e.batch[:0]
					}
					msgs++
				}
			}
			report(msgs, "messages/cpu-s")
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "messages/s")
		})
	}
}

// BenchmarkSyslogTCP sends RFC 5424 messages over one TCP connection to a
// pipeline of a syslog Source and a discarding sink, and reports lines/s
// end to end. The baseline sub-benchmark sends the same bytes to a
// listener that only reads and splits lines (bufio), the raw limit of the
// loopback connection and the line split.
func BenchmarkSyslogTCP(b *testing.B) {
	const n = 20000
	data := benchMessages("rfc5424", n)
	send := func(b *testing.B, addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(data); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("baseline-tcp-bufio-lines", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		done := make(chan int)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- 0
				return
			}
			defer c.Close()
			sc := bufio.NewScanner(c)
			lines := 0
			for sc.Scan() {
				lines++
				if lines == n*b.N {
					break
				}
			}
			done <- lines
		}()
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		send(b, ln.Addr().String())
		lines := <-done
		b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	})
	b.Run("syslog-pipeline-discard", func(b *testing.B) {
		src := &Source{Addr: "127.0.0.1:0", DisableHostnameLookup: true}
		counted := &countingSink{want: int64(n * b.N), done: make(chan struct{})}
		pb := pipeline.New()
		pipeline.To(pb, "discard", counted, pipeline.FromSource(pb, "syslog", src))
		p, err := pb.Build()
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		runDone := make(chan error, 1)
		go func() { runDone <- p.Run(ctx) }()
		for src.LocalAddr() == nil {
			time.Sleep(time.Millisecond) // until the pipeline started the source
		}
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		b.ResetTimer()
		send(b, src.LocalAddr().String())
		<-counted.done
		b.StopTimer()
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
		cancel()
		<-runDone
	})
}

// countingSink discards entries and signals when it has seen want.
type countingSink struct {
	sink.Discard[ferry.Entry]
	n, want int64
	done    chan struct{}
}

func (s *countingSink) Send(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
	s.n += int64(len(b.Items))
	if s.n == s.want {
		close(s.done)
	}
	b.Done(nil)
	return nil
}
