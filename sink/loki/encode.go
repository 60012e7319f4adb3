package loki

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// entry is one log entry as a push batch holds it. The strings are those of
// the upstream batch, which the sink owns until it acknowledges it, so
// nothing is copied.
type entry struct {
	sec  int64
	nsec int32
	size int32 // encoded protobuf size of the EntryAdapter, set by encodeProto
	line string
	md   labels.Labels
}

// streamBuf is the entries of one stream in one push batch, in arrival
// order until the batch is sealed, then in timestamp order.
type streamBuf struct {
	s       *stream
	entries []entry
}

func entryLess(a, b entry) int {
	if a.sec != b.sec {
		if a.sec < b.sec {
			return -1
		}
		return 1
	}
	return int(a.nsec) - int(b.nsec)
}

// sortEntries puts the entries of sb in timestamp order, keeping the arrival
// order of equal timestamps. Entries usually arrive in order, and then this
// is one pass.
func (sb *streamBuf) sortEntries() {
	if !slices.IsSortedFunc(sb.entries, entryLess) {
		slices.SortStableFunc(sb.entries, entryLess)
	}
}

// Field numbers of Loki's push.proto.
const (
	fieldPushStreams    = 1 // PushRequest.streams
	fieldStreamLabels   = 1 // StreamAdapter.labels
	fieldStreamEntries  = 2 // StreamAdapter.entries
	fieldEntryTimestamp = 1 // EntryAdapter.timestamp
	fieldEntryLine      = 2 // EntryAdapter.line
	fieldEntryMetadata  = 3 // EntryAdapter.structuredMetadata
	fieldPairName       = 1 // LabelPairAdapter.name
	fieldPairValue      = 2 // LabelPairAdapter.value
	fieldTsSeconds      = 1 // google.protobuf.Timestamp.seconds
	fieldTsNanos        = 2 // google.protobuf.Timestamp.nanos
)

func tsSize(e *entry) int {
	n := 0
	if e.sec != 0 {
		n += 1 + protowire.SizeVarint(uint64(e.sec))
	}
	if e.nsec != 0 {
		n += 1 + protowire.SizeVarint(uint64(e.nsec))
	}
	return n
}

func pairSize(name, value string) int {
	n := 0
	if name != "" {
		n += 1 + protowire.SizeBytes(len(name))
	}
	if value != "" {
		n += 1 + protowire.SizeBytes(len(value))
	}
	return n
}

func entrySize(e *entry) int {
	n := 1 + protowire.SizeBytes(tsSize(e))
	if e.line != "" {
		n += 1 + protowire.SizeBytes(len(e.line))
	}
	e.md.Range(func(l labels.Label) {
		n += 1 + protowire.SizeBytes(pairSize(l.Name, l.Value))
	})
	return n
}

// appendProto appends the PushRequest of streams to buf, unframed and
// uncompressed. It computes every size first (remembering entry sizes) so
// that the message is written in one pass into a buffer of the exact size.
func appendProto(buf []byte, streams []*streamBuf) []byte {
	total := 0
	for _, sb := range streams {
		total += 1 + protowire.SizeBytes(streamSize(sb))
	}
	buf = slices.Grow(buf, total)
	for _, sb := range streams {
		buf = protowire.AppendTag(buf, fieldPushStreams, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(streamSizeCached(sb)))
		buf = protowire.AppendTag(buf, fieldStreamLabels, protowire.BytesType)
		buf = protowire.AppendString(buf, sb.s.key)
		for i := range sb.entries {
			e := &sb.entries[i]
			buf = protowire.AppendTag(buf, fieldStreamEntries, protowire.BytesType)
			buf = protowire.AppendVarint(buf, uint64(e.size))
			buf = protowire.AppendTag(buf, fieldEntryTimestamp, protowire.BytesType)
			buf = protowire.AppendVarint(buf, uint64(tsSize(e)))
			if e.sec != 0 {
				buf = protowire.AppendTag(buf, fieldTsSeconds, protowire.VarintType)
				buf = protowire.AppendVarint(buf, uint64(e.sec))
			}
			if e.nsec != 0 {
				buf = protowire.AppendTag(buf, fieldTsNanos, protowire.VarintType)
				buf = protowire.AppendVarint(buf, uint64(e.nsec))
			}
			if e.line != "" {
				buf = protowire.AppendTag(buf, fieldEntryLine, protowire.BytesType)
				buf = protowire.AppendString(buf, e.line)
			}
			e.md.Range(func(l labels.Label) {
				buf = protowire.AppendTag(buf, fieldEntryMetadata, protowire.BytesType)
				buf = protowire.AppendVarint(buf, uint64(pairSize(l.Name, l.Value)))
				if l.Name != "" {
					buf = protowire.AppendTag(buf, fieldPairName, protowire.BytesType)
					buf = protowire.AppendString(buf, l.Name)
				}
				if l.Value != "" {
					buf = protowire.AppendTag(buf, fieldPairValue, protowire.BytesType)
					buf = protowire.AppendString(buf, l.Value)
				}
			})
		}
	}
	return buf
}

// streamSize computes the size of sb's StreamAdapter and stores every
// entry's size in it for appendProto.
func streamSize(sb *streamBuf) int {
	n := 1 + protowire.SizeBytes(len(sb.s.key))
	for i := range sb.entries {
		e := &sb.entries[i]
		es := entrySize(e)
		e.size = int32(es)
		n += 1 + protowire.SizeBytes(es)
	}
	return n
}

// streamSizeCached is streamSize from the entry sizes streamSize stored.
func streamSizeCached(sb *streamBuf) int {
	n := 1 + protowire.SizeBytes(len(sb.s.key))
	for i := range sb.entries {
		n += 1 + protowire.SizeBytes(int(sb.entries[i].size))
	}
	return n
}

// compress returns src in snappy block format, reusing dst's memory. It
// uses golang/snappy, not the s2 Snappy-compatible encoder of remote write:
// on log lines golang/snappy measured faster (BenchmarkFileToLoki's
// limit-encode, paired rounds on 2026-12-05: 3.46–3.96 M lines per CPU
// second against 2.78–3.75 M).
func compress(dst, src []byte) []byte {
	need := snappy.MaxEncodedLen(len(src))
	if cap(dst) < need {
		dst = make([]byte, need)
	}
	return snappy.Encode(dst[:cap(dst)], src)
}

// appendJSON appends the push request of streams in Loki's JSON format.
func appendJSON(buf []byte, streams []*streamBuf) []byte {
	buf = append(buf, `{"streams":[`...)
	for i, sb := range streams {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"stream":`...)
		if sb.s.json != nil {
			buf = append(buf, sb.s.json...)
		} else {
			buf = appendLabelsJSON(buf, sb.s.lbls)
		}
		buf = append(buf, `,"values":[`...)
		for j := range sb.entries {
			e := &sb.entries[j]
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `["`...)
			buf = strconv.AppendInt(buf, e.sec*1e9+int64(e.nsec), 10)
			buf = append(buf, `",`...)
			buf = appendJSONString(buf, e.line)
			if !e.md.IsEmpty() {
				buf = append(buf, ',')
				buf = appendLabelsJSON(buf, e.md)
			}
			buf = append(buf, ']')
		}
		buf = append(buf, "]}"...)
	}
	return append(buf, "]}"...)
}

// appendLabelsJSON appends ls as a flat JSON object of strings.
func appendLabelsJSON(buf []byte, ls labels.Labels) []byte {
	buf = append(buf, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, l.Name)
		buf = append(buf, ':')
		buf = appendJSONString(buf, l.Value)
	})
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
