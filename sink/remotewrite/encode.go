package remotewrite

import (
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/labelsenc"
)

// MetadataFunc returns the metadata of the family a series named metric
// belongs to. scrape.Scraper.Metadata has this shape.
type MetadataFunc func(metric string) (typ model.MetricType, help, unit string, ok bool)

// encoder builds request bodies. It is owned by one shard and reuses its
// buffers, so that the steady state allocates nothing per sample.
type encoder struct {
	pb     []byte // protobuf body
	ts     []byte // v2: time series, written before the symbols are known
	out    []byte // snappy-compressed body
	refs   []uint32
	syms   map[string]uint32
	symbol []string
	seen   map[string]struct{} // v1 metadata: families already in this request
	mdSent map[string]int64    // v1 metadata: when each family was last sent (unix ms)
}

// MetadataInterval is how often a 1.0 sink repeats the metadata of a family
// (Prometheus's metadata_config send_interval).
const MetadataInterval = time.Minute

// v1 message field numbers (prompb).
const (
	v1WriteTimeseries = 1
	v1WriteMetadata   = 3
	v1SeriesLabels    = 1
	v1SeriesSamples   = 2
	v1LabelName       = 1
	v1LabelValue      = 2
	v1SampleValue     = 1
	v1SampleTimestamp = 2
	v1MetaType        = 1
	v1MetaFamily      = 2
	v1MetaHelp        = 4
	v1MetaUnit        = 5
)

// v2 message field numbers (io.prometheus.write.v2).
const (
	v2ReqSymbols       = 4
	v2ReqTimeseries    = 5
	v2SeriesLabelsRefs = 1
	v2SeriesSamples    = 2
	v2SeriesMetadata   = 5
	v2MetaType         = 1
	v2MetaHelpRef      = 3
	v2MetaUnitRef      = 4
)

// metricTypeCode maps an exposition type to the enum shared by both
// protocol versions (v1 MetricMetadata.MetricType, v2 Metadata.MetricType).
func metricTypeCode(t model.MetricType) uint64 {
	switch t {
	case model.MetricTypeCounter:
		return 1
	case model.MetricTypeGauge:
		return 2
	case model.MetricTypeHistogram:
		return 3
	case model.MetricTypeGaugeHistogram:
		return 4
	case model.MetricTypeSummary:
		return 5
	case model.MetricTypeInfo:
		return 6
	case model.MetricTypeStateset:
		return 7
	}
	return 0
}

// tag is the one-byte key of field num with wire type typ (every field
// number here is below 16).
func tag(num protowire.Number, typ protowire.Type) byte { return byte(num)<<3 | byte(typ) }

// appendVarint is protowire.AppendVarint with the one-byte case inlined:
// label lengths and symbol references are mostly below 128.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// appendString appends a length-delimited string.
func appendString(b []byte, s string) []byte {
	return append(appendVarint(b, uint64(len(s))), s...)
}

// A labels.Labels held in the stringlabels encoding (labelsenc.Raw) is a
// run of names and values each preceded by its length in one byte when
// shorter than 255; below 128 that byte is also the length's protobuf
// varint, so a name or value is copied into a Label message with its
// length as it is, without decoding the labels.

// appendRawLabels appends the labels fields of a TimeSeries message for
// the encoded labels raw, in one pass over raw. It appends nothing and
// reports false if a name or value is 128 bytes or longer.
func appendRawLabels(b []byte, raw string) ([]byte, bool) {
	start := len(b)
	for i := 0; i < len(raw); {
		j := i + 1 + int(raw[i])
		if raw[i] >= 0x80 || j >= len(raw) || raw[j] >= 0x80 {
			return b[:start], false
		}
		k := j + 1 + int(raw[j])
		b = append(b, tag(v1SeriesLabels, protowire.BytesType))
		b = appendVarint(b, uint64(k-i+2))
		b = append(b, tag(v1LabelName, protowire.BytesType))
		b = append(b, raw[i:j]...)
		b = append(b, tag(v1LabelValue, protowire.BytesType))
		b = append(b, raw[j:k]...)
		i = k
	}
	return b, true
}

// putLength writes the length of a message appended to b after the two
// bytes kept for it at b[at:], so that the message is written in one
// pass: two bytes are what a length of 128 to 16383 takes (nearly every
// series), and the message is moved when the length takes another number
// of bytes.
func putLength(b []byte, at int) []byte {
	size := uint64(len(b) - at - 2)
	switch n := protowire.SizeVarint(size); n {
	case 2:
		b[at], b[at+1] = byte(size)|0x80, byte(size>>7)
	case 1:
		copy(b[at+1:], b[at+2:])
		b = b[:len(b)-1]
		b[at] = byte(size)
	default:
		end := len(b)
		b = append(b, make([]byte, n-2)...)
		copy(b[at+n:], b[at+2:end])
		protowire.AppendVarint(b[at:at], size)
	}
	return b
}

func sampleSize(t int64) int {
	return 1 + 8 + 1 + protowire.SizeVarint(uint64(t))
}

// encodeV1 writes a prometheus.WriteRequest holding one TimeSeries per
// sample and, when md is set, the metadata of each family the samples
// belong to. It returns the protobuf bytes (owned by e).
func (e *encoder) encodeV1(samples []ferry.Sample, md MetadataFunc) []byte {
	return e.encodeV1At(samples, md, time.Now().UnixMilli())
}

// encodeV1At is encodeV1 at the time now (unix ms): a family's metadata is
// included only if it was not sent within MetadataInterval.
func (e *encoder) encodeV1At(samples []ferry.Sample, md MetadataFunc, now int64) []byte {
	b := e.pb[:0]
	for i := range samples {
		s := &samples[i]
		ss := sampleSize(s.T)
		b = append(b, tag(v1WriteTimeseries, protowire.BytesType))
		at := len(b)
		b = append(b, 0, 0) // the series' length, see putLength
		raw, ok := labelsenc.Raw(s.Labels)
		if ok {
			b, ok = appendRawLabels(b, raw)
		}
		if !ok {
			s.Labels.Range(func(l labels.Label) {
				m := 1 + protowire.SizeBytes(len(l.Name)) + 1 + protowire.SizeBytes(len(l.Value))
				b = append(b, tag(v1SeriesLabels, protowire.BytesType))
				b = appendVarint(b, uint64(m))
				b = append(b, tag(v1LabelName, protowire.BytesType))
				b = appendString(b, l.Name)
				b = append(b, tag(v1LabelValue, protowire.BytesType))
				b = appendString(b, l.Value)
			})
		}
		b = append(b, tag(v1SeriesSamples, protowire.BytesType))
		b = appendVarint(b, uint64(ss))
		b = appendSample(b, s)
		b = putLength(b, at)
	}
	if md != nil {
		if e.seen == nil {
			e.seen = make(map[string]struct{})
		}
		if e.mdSent == nil || len(e.mdSent) > 100000 {
			e.mdSent = make(map[string]int64)
		}
		clear(e.seen)
		for i := range samples {
			name := samples[i].Labels.Get(model.MetricNameLabel)
			if name == "" {
				continue
			}
			if _, ok := e.seen[name]; ok {
				continue
			}
			e.seen[name] = struct{}{}
			if last, ok := e.mdSent[name]; ok && now-last < MetadataInterval.Milliseconds() {
				continue
			}
			typ, help, unit, ok := md(name)
			if !ok {
				continue
			}
			e.mdSent[name] = now
			code := metricTypeCode(typ)
			n := 0
			if code != 0 {
				n += 1 + protowire.SizeVarint(code)
			}
			n += 1 + protowire.SizeBytes(len(name))
			if help != "" {
				n += 1 + protowire.SizeBytes(len(help))
			}
			if unit != "" {
				n += 1 + protowire.SizeBytes(len(unit))
			}
			b = protowire.AppendTag(b, v1WriteMetadata, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(n))
			if code != 0 {
				b = protowire.AppendTag(b, v1MetaType, protowire.VarintType)
				b = protowire.AppendVarint(b, code)
			}
			b = protowire.AppendTag(b, v1MetaFamily, protowire.BytesType)
			b = protowire.AppendString(b, name)
			if help != "" {
				b = protowire.AppendTag(b, v1MetaHelp, protowire.BytesType)
				b = protowire.AppendString(b, help)
			}
			if unit != "" {
				b = protowire.AppendTag(b, v1MetaUnit, protowire.BytesType)
				b = protowire.AppendString(b, unit)
			}
		}
	}
	e.pb = b
	return b
}

// appendSample writes the fields of a Sample message (identical in v1 and
// v2: value = 1 as double, timestamp = 2 as int64). The value is always
// written, even 0, so that a stale marker's bit pattern travels unchanged.
func appendSample(b []byte, s *ferry.Sample) []byte {
	b = append(b, tag(v1SampleValue, protowire.Fixed64Type))
	b = protowire.AppendFixed64(b, math.Float64bits(s.V))
	b = append(b, tag(v1SampleTimestamp, protowire.VarintType))
	return protowire.AppendVarint(b, uint64(s.T))
}

func (e *encoder) symbolize(s string) uint32 {
	if r, ok := e.syms[s]; ok {
		return r
	}
	r := uint32(len(e.symbol))
	e.symbol = append(e.symbol, s)
	e.syms[s] = r
	return r
}

// encodeV2 writes an io.prometheus.write.v2.Request with one TimeSeries per
// sample, labels as references into a symbol table whose first entry is "".
func (e *encoder) encodeV2(samples []ferry.Sample, md MetadataFunc) []byte {
	if e.syms == nil {
		e.syms = make(map[string]uint32, 1024)
	}
	clear(e.syms)
	e.symbol = e.symbol[:0]
	e.symbolize("")
	ts := e.ts[:0]
	for i := range samples {
		s := &samples[i]
		refs := e.refs[:0]
		s.Labels.Range(func(l labels.Label) {
			refs = append(refs, e.symbolize(l.Name), e.symbolize(l.Value))
		})
		e.refs = refs
		refsSize := 0
		for _, r := range refs {
			refsSize += protowire.SizeVarint(uint64(r))
		}
		var code uint64
		var helpRef, unitRef uint32
		if md != nil {
			if typ, help, unit, ok := md(s.Labels.Get(model.MetricNameLabel)); ok {
				code = metricTypeCode(typ)
				if help != "" {
					helpRef = e.symbolize(help)
				}
				if unit != "" {
					unitRef = e.symbolize(unit)
				}
			}
		}
		mdSize := 0
		if code != 0 {
			mdSize += 1 + protowire.SizeVarint(code)
		}
		if helpRef != 0 {
			mdSize += 1 + protowire.SizeVarint(uint64(helpRef))
		}
		if unitRef != 0 {
			mdSize += 1 + protowire.SizeVarint(uint64(unitRef))
		}
		ss := sampleSize(s.T)
		n := 0
		if len(refs) > 0 {
			n += 1 + protowire.SizeBytes(refsSize)
		}
		n += 1 + protowire.SizeBytes(ss)
		n += 1 + protowire.SizeBytes(mdSize)

		ts = append(ts, tag(v2ReqTimeseries, protowire.BytesType))
		ts = appendVarint(ts, uint64(n))
		if len(refs) > 0 {
			ts = append(ts, tag(v2SeriesLabelsRefs, protowire.BytesType))
			ts = appendVarint(ts, uint64(refsSize))
			for _, r := range refs {
				ts = appendVarint(ts, uint64(r))
			}
		}
		ts = append(ts, tag(v2SeriesSamples, protowire.BytesType))
		ts = appendVarint(ts, uint64(ss))
		ts = appendSample(ts, s)
		ts = append(ts, tag(v2SeriesMetadata, protowire.BytesType))
		ts = appendVarint(ts, uint64(mdSize))
		if code != 0 {
			ts = protowire.AppendTag(ts, v2MetaType, protowire.VarintType)
			ts = protowire.AppendVarint(ts, code)
		}
		if helpRef != 0 {
			ts = protowire.AppendTag(ts, v2MetaHelpRef, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(helpRef))
		}
		if unitRef != 0 {
			ts = protowire.AppendTag(ts, v2MetaUnitRef, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(unitRef))
		}
	}
	e.ts = ts
	b := e.pb[:0]
	for _, s := range e.symbol {
		b = append(b, tag(v2ReqSymbols, protowire.BytesType))
		b = appendString(b, s)
	}
	b = append(b, ts...)
	e.pb = b
	return b
}

// bodyBufs holds the large buffers of request bodies (protobuf, 2.0 series,
// snappy output), shared by all shards of all Sinks. A shard holds the
// protobuf ones only while it encodes and the compressed one while it
// sends, so that many shards waiting on a slow receiver do not keep three
// request-sized buffers each.
var bodyBufs sync.Pool // *[]byte

func getBodyBuf() []byte {
	if p, ok := bodyBufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

func putBodyBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= 64<<20 {
		bodyBufs.Put(&b)
	}
}

// encode builds the compressed body of a request holding samples, in the
// protocol v2 or 1.0. The body stays valid until release.
func (e *encoder) encode(samples []ferry.Sample, v2 bool, md MetadataFunc) []byte {
	e.pb = getBodyBuf()
	var pb []byte
	if v2 {
		e.ts = getBodyBuf()
		pb = e.encodeV2(samples, md)
	} else {
		pb = e.encodeV1(samples, md)
	}
	if e.out == nil {
		e.out = getBodyBuf()
	}
	body := e.compress(pb)
	putBodyBuf(e.pb)
	putBodyBuf(e.ts)
	e.pb, e.ts = nil, nil
	return body
}

// release gives back the buffer of the body encode returned.
func (e *encoder) release() {
	putBodyBuf(e.out)
	e.out = nil
}

// compress snappy-encodes pb (block format) into e's reused output buffer.
// It uses the Snappy-compatible encoder of klauspost/compress/s2, which
// writes a valid Snappy block (any Snappy decoder reads it; the tests
// decode with golang/snappy) in about half the time of golang/snappy's
// Encode: see BenchmarkRemoteWriteEncode next to BenchmarkRawSnappy.
func (e *encoder) compress(pb []byte) []byte {
	if n := s2.MaxEncodedLen(len(pb)); cap(e.out) < n {
		e.out = make([]byte, n)
	}
	e.out = s2.EncodeSnappy(e.out[:cap(e.out)], pb)
	return e.out
}
