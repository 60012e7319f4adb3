package syslogmsg

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/cpuclock"
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

// BenchmarkSyslogParse measures the parser against the raw limit of the
// same bytes, paired in every iteration: first a plain bufio line split of
// the whole input (bufio.Reader.ReadSlice('\n'), reused, so that it
// allocates nothing), then the subject over the same messages. Each phase
// is timed by the thread's CPU clock (Linux; wall clock elsewhere), since
// on a busy machine the wall clock also counts other programs. It reports
// both rates and share = subject rate / bufio rate; the goal for /parse is
// a share of at least 0.30 with no allocation.
//
//   - parse: Parser.Parse of each message;
//   - entry: Parse, then Builder.Build (line and labels, structured data
//     included: one string per message);
//   - reference: the parser before its rewrite (reference_test.go), for a
//     before/after figure from the same command.
func BenchmarkSyslogParse(b *testing.B) {
	const n = 10000
	for _, format := range []string{"rfc5424", "rfc3164"} {
		data := benchMessages(format, n)
		var msgs [][]byte
		for _, l := range bytes.SplitAfter(data, []byte("\n")) {
			if len(l) > 0 {
				msgs = append(msgs, l)
			}
		}
		// As in production: the clock read once per 1024 messages.
		p := &Parser{}
		rp := &refParser{}
		bld := &Builder{StructuredData: true}
		var m Message
		subjects := []struct {
			name string
			fn   func([]byte) error
		}{
			{"parse", func(l []byte) error { return p.Parse(l, &m) }},
			{"entry", func(l []byte) error {
				err := p.Parse(l, &m)
				bld.Build(&m, l, err)
				return err
			}},
			{"reference", func(l []byte) error { return rp.Parse(l, &m) }},
		}
		for _, sub := range subjects {
			b.Run(format+"/"+sub.name, func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				br := bufio.NewReaderSize(nil, 64<<10)
				rd := bytes.NewReader(nil)
				var split, subj time.Duration
				count := 0
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					t0 := cpuclock.Thread()
					rd.Reset(data)
					br.Reset(rd)
					lines := 0
					for {
						l, err := br.ReadSlice('\n')
						if err != nil {
							break
						}
						lines += len(l) & 1 // keep the loop from being optimised away
						count++
					}
					t1 := cpuclock.Thread()
					for _, l := range msgs {
						if err := sub.fn(l); err != nil {
							b.Fatal(err)
						}
					}
					t2 := cpuclock.Thread()
					split += t1 - t0
					subj += t2 - t1
					_ = lines
				}
				if subj > 0 && split > 0 {
					bufioRate := float64(count) / split.Seconds()
					rate := float64(count) / subj.Seconds()
					b.ReportMetric(bufioRate, "bufio-msgs/"+cpuclock.ThreadUnit)
					b.ReportMetric(rate, "msgs/"+cpuclock.ThreadUnit)
					b.ReportMetric(rate/bufioRate, "share")
				}
			})
		}
	}
}
