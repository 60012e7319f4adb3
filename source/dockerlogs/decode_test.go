package dockerlogs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ferrydev/ferry/internal/arena"
	"github.com/ferrydev/ferry/source"
)

const ts0 = "2026-11-25T13:45:01.123456789Z"

func frame(stream byte, payload string) []byte {
	h := make([]byte, 8, 8+len(payload))
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return append(h, payload...)
}

type got struct {
	stream int
	ts     int64
	line   string
	kind   lineKind
}

// decodeAll runs the decoder and assembler over raw and returns the lines.
func decodeAll(t testing.TB, r io.Reader, tty bool, maxLine int, policy source.LongLinePolicy) ([]got, error) {
	d := newDecoder(r, tty, 0)
	a := assembler{max: maxLine, policy: policy}
	a.reset(tty)
	var out []got
	emit := func(stream int, ts int64, line []byte, kind lineKind) {
		if kind != lineNone {
			out = append(out, got{stream, ts, string(line), kind})
		}
	}
	for {
		err := d.next()
		if err != nil {
			if err == io.EOF {
				a.flush(emit)
				return out, nil
			}
			return out, err
		}
		ts, line, kind := a.add(&d.m)
		emit(d.m.stream, ts, line, kind)
	}
}

// The decoder reads timestamps as time.Parse(time.RFC3339Nano, …) does,
// the daemon's fixed nine-digit form and any other, and refuses what
// time.Parse refuses: a second of 60 and a day past its month's end, which
// no daemon writes, included.
func TestTimestamp(t *testing.T) {
	var d decoder
	for _, s := range []string{ts0, "1970-01-01T00:00:00.000000000Z", "2000-02-29T23:59:59.999999999Z", "1969-12-31T23:59:59.000000001Z",
		"2026-11-25T13:45:01.5+02:00", "2026-11-25T13:45:01Z", "2026-11-25T13:45:02.000000001Z"} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := d.timestamp([]byte(s))
		if !ok || got != want.UnixNano() {
			t.Errorf("%s: got %d %v, want %d", s, got, ok, want.UnixNano())
		}
	}
	for _, s := range []string{"", "x", "2026-13-25T13:45:01.123456789Z", "2026-11-25T13:45:0x.123456789Z", "hello world",
		"2026-11-25T13:45:60.000000000Z", "2026-02-31T13:45:01.000000000Z", "2026-11-25T13:45:01.12345678xZ"} {
		if _, ok := d.timestamp([]byte(s)); ok {
			t.Errorf("%q parsed", s)
		}
	}
}

// parseTS splits off a timestamp of any length, also one whose line has a
// space where the daemon's 30-byte timestamps end.
func TestParseTS(t *testing.T) {
	var d decoder
	for _, c := range []struct{ line, ts, rest string }{
		{ts0 + " hello", ts0, "hello"},
		{"2026-11-25T13:45:01Z hello wor ld", "2026-11-25T13:45:01Z", "hello wor ld"},
		{"2026-11-25T13:45:01.5+02:00 x", "2026-11-25T13:45:01.5+02:00", "x"},
		{"no timestamp; its byte 30 is a space too", "", "no timestamp; its byte 30 is a space too"},
	} {
		want := int64(0)
		if c.ts != "" {
			want = tsNanos(t, c.ts)
		}
		ts, rest := d.parseTS([]byte(c.line))
		if ts != want || string(rest) != c.rest {
			t.Errorf("%q: %d %q, want %d %q", c.line, ts, rest, want, c.rest)
		}
	}
}

// tsNanos is the time of the timestamp s in Unix nanoseconds.
func tsNanos(t *testing.T, s string) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UnixNano()
}

func TestDecodeMultiplexed(t *testing.T) {
	tsn := tsNanos(t, ts0)
	long := strings.Repeat("a", dockerPartialSize) + strings.Repeat("b", dockerPartialSize) + "c"
	var raw []byte
	raw = append(raw, frame(1, ts0+" hello\n")...)
	raw = append(raw, frame(2, ts0+" oops\n")...)
	raw = append(raw, frame(1, ts0+" \n")...)            // empty line
	raw = append(raw, frame(1, ts0+" crlf\r\n")...)      // CR kept without TTY
	raw = append(raw, frame(1, ts0+" "+long[:16384])...) // partial parts
	raw = append(raw, frame(2, ts0+" between\n")...)     // other stream in between
	raw = append(raw, frame(1, ts0+" "+long[16384:32768])...)
	raw = append(raw, frame(1, ts0+" "+long[32768:]+"\n")...)
	raw = append(raw, frame(0, ts0+" stdin is stdout\n")...)
	raw = append(raw, frame(1, "")...) // empty frame
	raw = append(raw, frame(1, "no timestamp\n")...)
	raw = append(raw, frame(1, ts0+" two\n"+ts0+" lines\n")...)
	raw = append(raw, frame(1, ts0+" last without newline")...)
	want := []got{
		{0, tsn, "hello", lineOK}, {1, tsn, "oops", lineOK}, {0, tsn, "", lineOK}, {0, tsn, "crlf\r", lineOK},
		{1, tsn, "between", lineOK}, {0, tsn, long, lineOK}, {0, tsn, "stdin is stdout", lineOK},
		{0, 0, "no timestamp", lineOK}, {0, tsn, "two", lineOK}, {0, tsn, "lines", lineOK},
		{0, tsn, "last without newline", lineOK},
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(raw),
		"one byte": iotest.OneByteReader(bytes.NewReader(raw)),
		"half":     iotest.HalfReader(bytes.NewReader(raw)),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := decodeAll(t, r, false, 1<<20, source.TruncateLongLines)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(want) {
				t.Fatalf("got %d lines, want %d: %v", len(out), len(want), out)
			}
			for i := range want {
				if out[i] != want[i] {
					t.Errorf("line %d: got %+v, want %+v", i, short(out[i]), short(want[i]))
				}
			}
		})
	}
}

func short(g got) got {
	if len(g.line) > 40 {
		g.line = fmt.Sprintf("%s...(%d bytes)", g.line[:20], len(g.line))
	}
	return g
}

func TestDecodeTTY(t *testing.T) {
	tsn := tsNanos(t, ts0)
	long := strings.Repeat("x", dockerPartialSize) + strings.Repeat("y", 100)
	raw := ts0 + " hello\r\n" + ts0 + " \r\n" + ts0 + " " + long[:dockerPartialSize] + ts0 + " " + long[dockerPartialSize:] + "\r\n" + ts0 + " end"
	want := []got{{0, tsn, "hello", lineOK}, {0, tsn, "", lineOK}, {0, tsn, long, lineOK}, {0, tsn, "end", lineOK}}
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(raw),
		"one byte": iotest.OneByteReader(strings.NewReader(raw)),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := decodeAll(t, r, true, 1<<20, source.TruncateLongLines)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(want) {
				t.Fatalf("got %d lines, want %d: %v", len(out), len(want), out)
			}
			for i := range want {
				if out[i] != want[i] {
					t.Errorf("line %d: got %+v, want %+v", i, short(out[i]), short(want[i]))
				}
			}
		})
	}
}

func TestLongLinePolicy(t *testing.T) {
	long := strings.Repeat("a", dockerPartialSize) + "bbb"
	raw := append(frame(1, ts0+" "+long[:dockerPartialSize]), frame(1, ts0+" "+long[dockerPartialSize:]+"\n")...)
	raw = append(raw, frame(1, ts0+" 0123456789abcdef\n")...)
	raw = append(raw, frame(1, ts0+" short\n")...)
	out, err := decodeAll(t, bytes.NewReader(raw), false, 10, source.TruncateLongLines)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].line != "aaaaaaaaaa" || out[0].kind != lineTruncated || out[1].line != "0123456789" ||
		out[1].kind != lineTruncated || out[2].line != "short" || out[2].kind != lineOK {
		t.Errorf("truncate: %v", out)
	}
	out, err = decodeAll(t, bytes.NewReader(raw), false, 10, source.DropLongLines)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].kind != lineDropped || out[1].kind != lineDropped || out[2].line != "short" {
		t.Errorf("drop: %v", out)
	}
}

func TestDecodeErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		raw  []byte
		want error
	}{
		"bad stream byte": {append([]byte{7, 0, 0, 0, 0, 0, 0, 1}, 'x'), ErrInvalidHeader},
		"short header":    {[]byte{1, 0, 0}, io.ErrUnexpectedEOF},
		"short payload":   {frame(1, ts0+" hello\n")[:20], io.ErrUnexpectedEOF},
		"cut long frame":  {frame(1, ts0+" "+strings.Repeat("x", 3*dockerPartialSize))[:2*dockerPartialSize], io.ErrUnexpectedEOF},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := decodeAll(t, bytes.NewReader(tc.raw), false, 100, source.TruncateLongLines)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if len(out) != 0 {
				t.Errorf("lines from a broken stream: %v", out)
			}
		})
	}
	_, err := decodeAll(t, bytes.NewReader(frame(3, "container is gone")), false, 100, source.TruncateLongLines)
	if err == nil || !strings.Contains(err.Error(), "container is gone") {
		t.Errorf("system error frame: %v", err)
	}
}

// FuzzDecode checks that no input makes the decoder panic, loop or return
// a line over the maximum, in both modes and with any read sizes, and that
// well-formed frames of fuzzed lines come back exactly.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(ts0+" hello\n"), false, uint8(0))
	f.Add(frame(1, ts0+" hello\n"), false, uint8(1))
	f.Add(append(frame(1, ts0+" a"), frame(2, ts0+" b\n")...), false, uint8(3))
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 2, 'h', 'i'}, true, uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, tty bool, chunk uint8) {
		var r io.Reader = bytes.NewReader(raw)
		if chunk%4 == 1 {
			r = iotest.OneByteReader(r)
		} else if chunk%4 == 2 {
			r = iotest.HalfReader(r)
		}
		out, _ := decodeAll(t, r, tty, 100, source.TruncateLongLines)
		for _, g := range out {
			if len(g.line) > 100 {
				t.Fatalf("line of %d bytes", len(g.line))
			}
		}
		// Round trip: the fuzzed bytes as lines of framed messages.
		if bytes.ContainsAny(raw, "\n\r") || len(raw) > dockerPartialSize {
			return
		}
		in := frame(2, ts0+" "+string(raw)+"\n")
		out, err := decodeAll(t, bytes.NewReader(in), false, 1<<20, source.TruncateLongLines)
		if err != nil || len(out) != 1 || out[0].line != string(raw) || out[0].stream != streamStderr {
			t.Fatalf("round trip of %q: %v %v", raw, out, err)
		}
	})
}

// benchLog builds the multiplexed log of n lines like those of a typical
// service, with timestamps, alternating stdout and stderr every 10 lines.
func benchLog(n int) ([]byte, int) {
	var raw []byte
	bytesOfLines := 0
	for i := range n {
		line := fmt.Sprintf(`level=info ts=2026-11-25T13:45:01Z caller=main.go:42 msg="request served" path=/api/v1/items/%d status=200`, i)
		stream := byte(1)
		if i/10%2 == 1 {
			stream = 2
		}
		raw = append(raw, frame(stream, ts0+" "+line+"\n")...)
		bytesOfLines += len(line) + 1
	}
	return raw, bytesOfLines
}

// BenchmarkDockerDemux measures the stream decoder (frame headers,
// timestamps, partial-line assembly) against bufio.Scanner splitting the
// same bytes into lines, the floor for any line reader, in the same run.
// "decoder" yields each line as bytes; "decoder+string" also makes the
// line's string as the source does for every entry, cut from an arena
// released every DefaultBatchSize lines.
//
//	go test -run '^$' -bench BenchmarkDockerDemux -benchmem ./source/dockerlogs
func BenchmarkDockerDemux(b *testing.B) {
	const n = 10000
	raw, _ := benchLog(n)
	type splitter func(r *bytes.Reader) int
	scanner := func(r *bytes.Reader) int {
		sc := bufio.NewScanner(r)
		lines := 0
		for sc.Scan() {
			lines++
		}
		return lines
	}
	d := newDecoder(nil, false, 0)
	a := assembler{max: DefaultMaxLineSize}
	var sink string
	var text arena.Arena
	decode := func(withString bool) splitter {
		return func(r *bytes.Reader) int {
			d.reset(r, false)
			a.reset(false)
			lines := 0
			for {
				if err := d.next(); err != nil {
					return lines
				}
				if _, line, k := a.add(&d.m); k != lineNone {
					if withString {
						sink = text.String(line)
					}
					lines++
					if lines%DefaultBatchSize == 0 {
						text.Release()
					}
				}
			}
		}
	}
	for _, bc := range []struct {
		name string
		fn   splitter
	}{
		{"baseline=bufio.Scanner", scanner},
		{"decoder", decode(false)},
		{"decoder+string", decode(true)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			r := bytes.NewReader(raw)
			for b.Loop() {
				r.Reset(raw)
				if got := bc.fn(r); got != n {
					b.Fatalf("%d lines", got)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			allocs := testing.AllocsPerRun(3, func() { r.Reset(raw); bc.fn(r) })
			b.ReportMetric(allocs/n, "allocs/line")
		})
	}
	// Both in turn, in the same iterations: on a busy machine the ratio
	// is steadier than two separate measurements.
	b.Run("decoder/baseline", func(b *testing.B) {
		r := bytes.NewReader(raw)
		var tb, td time.Duration
		for b.Loop() {
			r.Reset(raw)
			t0 := time.Now()
			scanner(r)
			t1 := time.Now()
			r.Reset(raw)
			decode(false)(r)
			t2 := time.Now()
			tb += t1.Sub(t0)
			td += t2.Sub(t1)
		}
		b.ReportMetric(float64(n)*float64(b.N)/tb.Seconds(), "baseline-lines/s")
		b.ReportMetric(float64(n)*float64(b.N)/td.Seconds(), "decoder-lines/s")
		b.ReportMetric(tb.Seconds()/td.Seconds(), "ratio")
	})
	_ = sink
}

// chunkReader returns its data in reads of the given sizes, then the rest.
type chunkReader struct {
	data  []byte
	sizes []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n, r.sizes = min(n, r.sizes[0]), r.sizes[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestDecodeTTYPartCutInTimestamp: a read that ends inside the timestamp
// of the part after a 16 KiB part must not make it content.
func TestDecodeTTYPartCutInTimestamp(t *testing.T) {
	long := strings.Repeat("x", dockerPartialSize) + "tail"
	raw := ts0 + " " + long[:dockerPartialSize] + ts0 + " " + long[dockerPartialSize:] + "\r\n"
	for _, cut := range []int{1, 5, 12, 29, 30, 31} {
		r := &chunkReader{data: []byte(raw), sizes: []int{len(ts0) + 1 + dockerPartialSize + cut}}
		out, err := decodeAll(t, r, true, 1<<20, source.TruncateLongLines)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || out[0].line != long {
			t.Fatalf("cut %d: %v", cut, out)
		}
	}
}

// daemonLog writes lines as the daemon sends them with timestamps: lines
// over 16 KiB in parts, each part with its own timestamp; framed unless tty.
func daemonLog(lines []string, tty bool) []byte {
	var out []byte
	for _, l := range lines {
		for {
			part, last := l, true
			if len(l) > dockerPartialSize {
				part, l, last = l[:dockerPartialSize], l[dockerPartialSize:], false
			}
			msg := ts0 + " " + part
			if last {
				if tty {
					msg += "\r"
				}
				msg += "\n"
			}
			if tty {
				out = append(out, msg...)
			} else {
				out = append(out, frame(1, msg)...)
			}
			if last {
				break
			}
		}
	}
	return out
}

// FuzzLongLines checks that lines of any length and content (without
// newlines) come back whole from the daemon's split form, in both modes,
// whatever the read sizes.
func FuzzLongLines(f *testing.F) {
	f.Add([]byte("abc"), uint16(0), uint16(7000), false)
	f.Add([]byte("x y"), uint16(6000), uint16(16385), true)
	f.Fuzz(func(t *testing.T, seed []byte, reps uint16, chunk uint16, tty bool) {
		if len(seed) == 0 || bytes.ContainsAny(seed, "\r\n") {
			return
		}
		line := bytes.Repeat(seed, int(reps)%20000+1)
		if len(line) > 100000 {
			line = line[:100000]
		}
		lines := []string{string(line), "short", string(line)}
		raw := daemonLog(lines, tty)
		sizes := make([]int, 0, 64)
		for i := 0; i < 64; i++ {
			sizes = append(sizes, int(chunk)%40000+1+i)
		}
		out, err := decodeAll(t, &chunkReader{data: raw, sizes: sizes}, tty, 1<<20, source.TruncateLongLines)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(lines) {
			t.Fatalf("%d lines, want %d", len(out), len(lines))
		}
		for i := range lines {
			if out[i].line != lines[i] || out[i].kind != lineOK {
				t.Fatalf("line %d: %d bytes, want %d", i, len(out[i].line), len(lines[i]))
			}
		}
	})
}

// The buffer starts small, grows so that a frame the daemon sends whole
// comes as one message, not cut at the starting size, and starts small
// again for the next stream.
func TestDecoderGrows(t *testing.T) {
	line := strings.Repeat("x", dockerPartialSize-100)
	d := newDecoder(bytes.NewReader(append(frame(1, ts0+" short\n"), frame(1, ts0+" "+line+"\n")...)), false, 0)
	if len(d.buf) != decoderStartSize {
		t.Fatalf("buffer starts at %d bytes, want %d", len(d.buf), decoderStartSize)
	}
	var got []string
	for {
		err := d.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d partial=%v", len(d.m.content), d.m.partial))
	}
	if want := []string{"5 partial=false", fmt.Sprintf("%d partial=false", len(line))}; !slices.Equal(got, want) {
		t.Errorf("messages %v, want %v", got, want)
	}
	if len(d.buf) <= decoderStartSize || len(d.buf) > d.max {
		t.Errorf("buffer %d bytes after a %d-byte frame", len(d.buf), len(line))
	}
	d.reset(bytes.NewReader(nil), false)
	if len(d.buf) != decoderStartSize {
		t.Errorf("buffer %d bytes after reset", len(d.buf))
	}
}
