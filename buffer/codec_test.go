package buffer

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
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
	// Damage between valid records: a flipped byte, zeros, garbage.
	var recs []byte
	for i := range 8 {
		var r encBuf
		d.encode(&r, entries(1, i*5, 5))
		recs = append(recs, r.b...)
	}
	for _, hurt := range []func(b []byte){
		func(b []byte) { b[len(b)/2] ^= 0x20 },
		func(b []byte) { clear(b[len(b)/3 : len(b)/2]) },
		func(b []byte) { copy(b[len(b)/2:], "\xff\x00\x00\x00garbage\x01\x00") },
	} {
		b := append(segHeader(), recs...)
		hurt(b[segHeaderSize:])
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The replay's reader, sealed and not: it skips damage, never
		// returns a record whose checksum does not match, and always
		// advances.
		for _, sealed := range []bool{true, false} {
			readAll(t, newSegReader(bytes.NewReader(data), d.maxPayload()), data, sealed)
		}
		// The recovery scan, as a sealed and as the last segment: it
		// counts what the reader reads.
		for _, last := range []bool{false, true} {
			si := &segInfo{size: int64(len(data))}
			end, err := scanRecords(bytes.NewReader(data), si, last, d.maxPayload(), 30)
			if err != nil && !errors.Is(err, errTooShort) {
				t.Fatal(err)
			}
			if end > si.size || (end < si.size && !last) || si.ackedRecords > si.records || si.records > int64(len(data)/recHeaderSize) {
				t.Fatalf("last %v: end %d of %d, %+v", last, end, si.size, si)
			}
		}
	})
}

// readAll reads a segment's records the way the replay does, checking
// every one it returns against the bytes of the file.
func readAll(t *testing.T, r *segReader, data []byte, sealed bool) {
	off, limit := int64(segHeaderSize), int64(len(data))
	for n := 0; off < limit; n++ {
		if n > len(data) {
			t.Fatal("reader does not advance")
		}
		h, payload, start, end, skipped, err := r.nextValid(off, limit, sealed, false)
		if err != nil {
			if !isDamage(err) {
				t.Fatal(err)
			}
			if sealed != errors.Is(err, errDamaged) || (sealed && skipped != limit-off) {
				t.Fatalf("sealed %v: %v, skipped %d of %d", sealed, err, skipped, limit-off)
			}
			return
		}
		if start != off+skipped || end <= start || end > limit {
			t.Fatalf("record [%d, %d) after %d skipped from %d", start, end, skipped, off)
		}
		rec := data[start:end]
		if readRecHeader(rec) != h || !bytes.Equal(rec[recHeaderSize:], payload) ||
			crc32.Checksum(rec[8:], castagnoli) != h.crc || !plausible(h, r.maxRecord) {
			t.Fatalf("record at %d does not match the file or its checksum", start)
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
}

// TestSegmentReaderDamage runs the reader and the recovery scan over a
// segment of 200 records damaged at random (flipped bytes, zeroed runs,
// inserted bytes, runs of plausible-looking headers), 300 times: what
// FuzzSegment does, deterministically and with larger segments.
func TestSegmentReaderDamage(t *testing.T) {
	d := &Disk[ferry.Entry]{Codec: EntryCodec{}, Options: Options{MaxBytes: 1 << 20, SegmentBytes: 64 << 10}}
	seg := segHeader()
	for i := range 200 {
		var r encBuf
		d.encode(&r, entries(1, i*5, 5))
		seg = append(seg, r.b...)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		data := bytes.Clone(seg)
		for k := rnd.IntN(20); k >= 0; k-- {
			i := segHeaderSize + rnd.IntN(len(data)-segHeaderSize)
			switch rnd.IntN(4) {
			case 0:
				data[i] ^= byte(1 + rnd.IntN(255))
			case 1:
				clear(data[i:min(len(data), i+rnd.IntN(2000))])
			case 2:
				data = slices.Insert(data, i, byte(rnd.IntN(256)), byte(rnd.IntN(256)))
			case 3:
				for j := i; j+4 <= len(data) && j < i+1000; j += 4 {
					data[j], data[j+1], data[j+2], data[j+3] = byte(rnd.IntN(256)), byte(rnd.IntN(2)), 0, 0
				}
			}
		}
		for _, sealed := range []bool{true, false} {
			readAll(t, newSegReader(bytes.NewReader(data), d.maxPayload()), data, sealed)
		}
		for _, last := range []bool{false, true} {
			si := &segInfo{size: int64(len(data))}
			if _, err := scanRecords(bytes.NewReader(data), si, last, d.maxPayload(), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
}
