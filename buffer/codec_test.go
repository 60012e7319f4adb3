package buffer

import (
	"bytes"
	"errors"
	"math"
	"os"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/labelsenc"
	"github.com/prometheus/prometheus/model/labels"
)

func roundTrip[T any](t *testing.T, c Codec[T], items []T, eq func(a, b T) bool) {
	t.Helper()
	var b []byte
	var ends []int
	for i := range items {
		var prev *T
		if i > 0 {
			prev = &items[i-1]
		}
		b = c.Append(b, &items[i], prev)
		ends = append(ends, len(b))
	}
	got := make([]T, len(items))
	start := 0
	for i, end := range ends {
		var prev *T
		if i > 0 {
			prev = &got[i-1]
		}
		if err := c.Decode(b[start:end], &got[i], prev); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if !eq(got[i], items[i]) {
			t.Fatalf("item %d: got %+v, want %+v", i, got[i], items[i])
		}
		start = end
	}
}

func TestEntryCodec(t *testing.T) {
	items := []ferry.Entry{
		entry(1, 0), entry(1, 1), entry(2, 2),
		{Labels: labels.EmptyLabels(), Line: ""}, // no timestamp, no labels
		{Labels: labels.FromStrings("a", "b"), Timestamp: time.Unix(0, -5), Line: "before 1970"},
		{Labels: labels.FromStrings("a", "b"), Timestamp: base.Add(-time.Hour), Line: "older than the previous",
			Metadata: labels.FromStrings("x", string(make([]byte, 300)))},
	}
	roundTrip(t, EntryCodec{}, items, equalEntry)
}

func TestSampleCodec(t *testing.T) {
	items := []ferry.Sample{
		{Labels: labels.FromStrings("__name__", "up", "job", "a"), T: 1000, V: 1},
		{Labels: labels.FromStrings("__name__", "up", "job", "a"), T: 500, V: math.Inf(-1)},
		{Labels: labels.FromStrings("__name__", "x"), T: -1, V: math.Float64frombits(0x7ff0000000000002)}, // stale NaN
	}
	roundTrip(t, SampleCodec{}, items, func(a, b ferry.Sample) bool {
		return labels.Equal(a.Labels, b.Labels) && a.T == b.T && math.Float64bits(a.V) == math.Float64bits(b.V)
	})
}

func TestCodecAllocs(t *testing.T) {
	if !labelsenc.ZeroCopy {
		t.Skip("labels are copied with this labels implementation")
	}
	items := entries(1, 0, 100)
	var b []byte
	ends := make([]int, len(items))
	for i := range items {
		var prev *ferry.Entry
		if i > 0 {
			prev = &items[i-1]
		}
		b = EntryCodec{}.Append(b, &items[i], prev)
		ends[i] = len(b)
	}
	got := make([]ferry.Entry, len(items))
	buf := b[:0]
	codec := NewEntryCodec()
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range items {
			var prev *ferry.Entry
			if i > 0 {
				prev = &items[i-1]
			}
			buf = EntryCodec{}.Append(buf, &items[i], prev)
		}
		start := 0
		for i, end := range ends {
			var prev *ferry.Entry
			if i > 0 {
				prev = &got[i-1]
			}
			codec.Decode(b[start:end], &got[i], prev)
			start = end
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 100 entries encoded and decoded", allocs)
	}
}

// TestLabelCacheCopies: labels decoded by NewEntryCodec do not alias the
// record, so a sink that keeps them does not keep the record.
func TestLabelCacheCopies(t *testing.T) {
	e := entry(1, 1)
	b := EntryCodec{}.Append(nil, &e, nil)
	var got ferry.Entry
	if err := NewEntryCodec().Decode(b, &got, nil); err != nil {
		t.Fatal(err)
	}
	want := e.Labels.String()
	clear(b)
	if got.Labels.String() != want {
		t.Fatalf("labels changed with the record: %s", got.Labels.String())
	}
}

func FuzzEntryCodec(f *testing.F) {
	items := entries(1, 0, 3)
	items[1].Labels = labels.FromStrings("z", string(make([]byte, 300)))
	for i := range items {
		var prev *ferry.Entry
		if i > 0 {
			prev = &items[i-1]
		}
		f.Add(EntryCodec{}.Append(nil, &items[i], prev))
	}
	f.Add([]byte{flagSameLabel})
	f.Add([]byte{0, 3, 1, 'a', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		prev := entry(9, 9)
		var e ferry.Entry
		if err := (EntryCodec{}).Decode(b, &e, &prev); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		var ec ferry.Entry
		if err := NewEntryCodec().Decode(b, &ec, &prev); err != nil || !equalEntry(e, ec) {
			t.Fatalf("the cached codec decodes differently: %v", err)
		}
		// What decodes re-encodes to something that decodes the same.
		e.Labels.Range(func(labels.Label) {})
		e.Metadata.Range(func(labels.Label) {})
		again := EntryCodec{}.Append(nil, &e, &prev)
		var e2 ferry.Entry
		if err := (EntryCodec{}).Decode(again, &e2, &prev); err != nil || !equalEntry(e, e2) {
			t.Fatalf("re-encoding: %v, %+v vs %+v", err, e, e2)
		}
	})
}

func FuzzSampleCodec(f *testing.F) {
	s := ferry.Sample{Labels: labels.FromStrings("__name__", "up"), T: 5, V: 1}
	f.Add(SampleCodec{}.Append(nil, &s, nil))
	f.Add(SampleCodec{}.Append(nil, &s, &s))
	f.Fuzz(func(t *testing.T, b []byte) {
		prev := s
		var x ferry.Sample
		if err := (SampleCodec{}).Decode(b, &x, &prev); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		x.Labels.Range(func(labels.Label) {})
		_ = x.Labels.Hash()
	})
}

// FuzzSegment feeds arbitrary bytes as a segment file to the recovery scan
// and the reader: neither may panic or loop, and what they return decodes
// or is reported corrupt.
func FuzzSegment(f *testing.F) {
	var rec encBuf
	d := &Disk[ferry.Entry]{Codec: EntryCodec{}, Options: Options{MaxBytes: 1 << 20, SegmentBytes: 64 << 10}}
	d.encode(&rec, entries(1, 0, 5))
	seg := append(segHeader(), rec.b...)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(append(bytes.Clone(seg), seg[8:]...))
	f.Add(segHeader())
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := segName(dir, 1)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The recovery scan, as a sealed and as the last segment.
		rd := &Disk[ferry.Entry]{Dir: dir, Codec: EntryCodec{}, Options: d.Options, log: newReporter().log}
		if _, err := rd.scanSegment(1, false, marker{}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if si, err := rd.scanSegment(1, true, marker{seg: 1, off: 30}); err != nil {
			t.Fatal(err)
		} else if si != nil && si.size > int64(len(data)) {
			t.Fatalf("scan grew the segment to %d", si.size)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		r := newSegReader(file, d.maxPayload())
		off, limit := int64(segHeaderSize), int64(len(data))
		for n := 0; off < limit; n++ {
			if n > len(data) {
				t.Fatal("reader does not advance")
			}
			h, payload, end, err := r.next(off, limit, false)
			if err != nil {
				return
			}
			if end <= off {
				t.Fatalf("end %d <= offset %d", end, off)
			}
			items := make([]ferry.Entry, h.items)
			var prev *ferry.Entry
			forEachItem(bytes.Clone(payload), h.items, func(i int, b []byte) error {
				if err := (EntryCodec{}).Decode(b, &items[i], prev); err != nil {
					return err
				}
				prev = &items[i]
				return nil
			})
			off = end
		}
	})
}
