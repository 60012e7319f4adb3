package otlp

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/otlpconv"
	"github.com/prometheus/prometheus/model/labels"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The protobuf decoder of logs, written on protowire: it reads an
// ExportLogsServiceRequest straight into entries, without the generated
// messages. It makes one copy of the body, as a string, and every line,
// attribute name and string value of the entries is a substring of it;
// formatted values (hex IDs, numbers) are cut from one growing buffer. It
// gives the same entries as proto.Unmarshal followed by convert (a test and
// a fuzz test check it), and rejects what proto.Unmarshal rejects:
// truncated or malformed fields and invalid UTF-8 in strings. Fields of
// unknown numbers, or of known numbers with another wire type, are skipped
// as unknown fields, as proto.Unmarshal keeps them.

var errUTF8 = errors.New("string field contains invalid UTF-8")

// wire is a read-only view of the request's string copy.
type wire []byte

// viewString returns v, a subslice of the request view, as a string sharing its
// memory. The view is never written, so the string is immutable.
func viewString(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

// field reads one field of b: its number, wire type, value bytes (for
// BytesType), varint or fixed value, and the rest of b.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	bytes []byte
	u64   uint64
}

func next(b []byte) (field, []byte, error) {
	var f field
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return f, nil, protowire.ParseError(n)
	}
	if num > protowire.MaxValidNumber {
		return f, nil, fmt.Errorf("invalid field number %d", num)
	}
	f.num, f.typ = num, typ
	b = b[n:]
	switch typ {
	case protowire.VarintType:
		f.u64, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		f.u64, n = protowire.ConsumeFixed64(b)
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(b)
		f.u64 = uint64(v)
	case protowire.BytesType:
		f.bytes, n = protowire.ConsumeBytes(b)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return f, nil, protowire.ParseError(n)
	}
	return f, b[n:], nil
}

// validString returns v as a string if it is valid UTF-8.
func validString(v []byte) (string, error) {
	if !utf8.Valid(v) {
		return "", errUTF8
	}
	return viewString(v), nil
}

// decodeLogsProto decodes an ExportLogsServiceRequest into entries
// appended to entries.
//
// With owned, the caller gives body to the entries: it must never write
// to it again, and the strings are cut from it without a copy.
func (d *logsDecoder) decodeProto(body []byte, entries []ferry.Entry, owned bool) ([]ferry.Entry, error) {
	if d.lb == nil {
		d.lb = labels.NewBuilder(labels.EmptyLabels())
		d.mb = labels.NewBuilder(labels.EmptyLabels())
	}
	b := body
	if !owned {
		copied := string(body)
		b = unsafe.Slice(unsafe.StringData(copied), len(copied))
	}
	d.arena.Release()
	if entries == nil {
		entries = make([]ferry.Entry, 0, len(body)/128)
	}
	err := eachBytes(b, 1, func(v []byte) (err error) {
		entries, err = d.resourceLogs(v, entries)
		return err
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// eachBytes calls fn with the value of every field num of b that has wire
// type bytes, in order; other fields are skipped.
func eachBytes(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		f, rest, err := next(b)
		if err != nil {
			return err
		}
		b = rest
		if f.num == num && f.typ == protowire.BytesType {
			if err := fn(f.bytes); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachHead reads the fields ResourceLogs and ScopeLogs share ahead of their
// children (which are field 2): it calls fn with every field 1, the
// resource or the scope, and checks field 3, schema_url, for UTF-8.
func eachHead(b []byte, fn func([]byte) error) error {
	for len(b) > 0 {
		f, rest, err := next(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			if err := fn(f.bytes); err != nil {
				return err
			}
		case f.num == 3 && f.typ == protowire.BytesType: // schema_url
			if !utf8.Valid(f.bytes) {
				return errUTF8
			}
		}
	}
	return nil
}

func (d *logsDecoder) resourceLogs(b []byte, entries []ferry.Entry) ([]ferry.Entry, error) {
	// The resource may follow its scopes on the wire: read it first.
	d.lb.Reset(labels.EmptyLabels())
	d.mb.Reset(labels.EmptyLabels())
	service := false
	if err := eachHead(b, func(v []byte) error { return d.resource(v, &service) }); err != nil {
		return nil, err
	}
	if !service && d.promote["service.name"] {
		d.lb.Set("service_name", UnknownService)
	}
	d.extra.Range(func(l labels.Label) { d.lb.Set(l.Name, l.Value) })
	stream := d.lb.Labels()
	resMeta := d.mb.Labels()
	err := eachBytes(b, 2, func(v []byte) (err error) {
		entries, err = d.scopeLogs(v, stream, resMeta, entries)
		return err
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// resource reads a Resource's attributes into d.lb (promoted) and d.mb.
func (d *logsDecoder) resource(b []byte, service *bool) error {
	for len(b) > 0 {
		f, rest, err := next(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			key, val, err := d.keyValue(f.bytes)
			if err != nil {
				return err
			}
			name := d.names.Name(key)
			if name == "" {
				continue
			}
			if d.promote[key] {
				if key == "service.name" {
					*service = true
				}
				d.lb.Set(name, val)
			} else {
				d.mb.Set(name, val)
			}
		case f.num == 3 && f.typ == protowire.BytesType: // entity_refs
			if err := checkMessage(f.bytes); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMessage checks that b is a well-formed message whose fields are
// all skipped (as the generated code would fail on malformed ones, a
// nested message of a known field is checked at least for framing).
func checkMessage(b []byte) error {
	var m commonpb.EntityRef
	return proto.Unmarshal(b, &m)
}

func (d *logsDecoder) scopeLogs(b []byte, stream, resMeta labels.Labels, entries []ferry.Entry) ([]ferry.Entry, error) {
	d.scopeName, d.scopeVersion, d.attrs, d.scopeLbls = "", "", d.attrs[:0], d.scopeLbls[:0]
	if err := eachHead(b, d.scope); err != nil {
		return nil, err
	}
	// As convert does: name and version, then the attributes.
	d.mb.Reset(resMeta)
	if d.scopeName != "" {
		d.mb.Set("scope_name", d.scopeName)
	}
	if d.scopeVersion != "" {
		d.mb.Set("scope_version", d.scopeVersion)
	}
	for _, l := range d.attrs {
		d.mb.Set(l.Name, l.Value)
	}
	scopeMeta := d.mb.Labels()
	stream = d.scopeStream(stream)
	d.scopeLast = ""
	scopeMeta.Range(func(l labels.Label) { d.scopeLast = l.Name })
	err := eachBytes(b, 2, func(v []byte) (err error) {
		entries, err = d.record(v, stream, scopeMeta, entries)
		return err
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// scope reads an InstrumentationScope (one occurrence of it: repeated
// occurrences merge) into d.scopeName, d.scopeVersion and d.attrs.
func (d *logsDecoder) scope(b []byte) error {
	for len(b) > 0 {
		f, rest, err := next(b)
		if err != nil {
			return err
		}
		b = rest
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case 1:
			if d.scopeName, err = validString(f.bytes); err != nil {
				return err
			}
		case 2:
			if d.scopeVersion, err = validString(f.bytes); err != nil {
				return err
			}
		case 3:
			key, val, err := d.keyValue(f.bytes)
			if err != nil {
				return err
			}
			if n := d.names.Name(key); n != "" {
				if d.scopePromote[key] {
					d.scopeLbls = append(d.scopeLbls, labels.Label{Name: n, Value: val})
				} else {
					d.attrs = append(d.attrs, labels.Label{Name: n, Value: val})
				}
			}
		}
	}
	return nil
}

func (d *logsDecoder) record(b []byte, stream, scopeMeta labels.Labels, entries []ferry.Entry) ([]ferry.Entry, error) {
	var (
		ts, observed uint64
		sevNum       uint64
		sevText      string
		body         []byte
		hasBody      bool
		flags        uint32
		trace, span  []byte
		event        string
	)
	d.attrs = d.attrs[:0]
	for len(b) > 0 {
		f, rest, err := next(b)
		if err != nil {
			return nil, err
		}
		b = rest
		switch f.typ {
		case protowire.Fixed64Type:
			switch f.num {
			case 1:
				ts = f.u64
			case 11:
				observed = f.u64
			}
		case protowire.VarintType:
			if f.num == 2 {
				sevNum = uint64(int32(f.u64))
			}
		case protowire.Fixed32Type:
			if f.num == 8 {
				flags = uint32(f.u64)
			}
		case protowire.BytesType:
			switch f.num {
			case 3:
				if sevText, err = validString(f.bytes); err != nil {
					return nil, err
				}
			case 5:
				// A repeated message field merges; the oneof's last
				// member wins. Keep the last body and merge by
				// decoding all of them in order.
				body, hasBody = merged(body, hasBody, f.bytes), true
			case 6:
				key, val, err := d.keyValue(f.bytes)
				if err != nil {
					return nil, err
				}
				if n := d.names.Name(key); n != "" {
					d.attrs = append(d.attrs, labels.Label{Name: n, Value: val})
				}
			case 9:
				trace = f.bytes
			case 10:
				span = f.bytes
			case 12:
				if event, err = validString(f.bytes); err != nil {
					return nil, err
				}
			}
		}
	}
	line, err := d.anyValue(body)
	if err != nil {
		return nil, err
	}
	if ts == 0 {
		ts = observed
	}
	if ts > math.MaxInt64 {
		d.reject("timestamp after 2262")
		return entries, nil
	}
	var t time.Time
	if ts != 0 {
		t = time.Unix(0, int64(ts))
	}
	// The specials, formatted, then the metadata: the fast way when no two
	// labels share a name (the common case), as convert does otherwise.
	// In the order of their names, so that a record with no other
	// metadata needs no sorting.
	add := func(name, value string) { d.attrs = append(d.attrs, labels.Label{Name: name, Value: value}) }
	if event != "" {
		add("event_name", event)
	}
	if flags != 0 {
		add("flags", strconv.FormatUint(uint64(flags), 10))
	}
	if sevNum != 0 {
		add("severity_number", strconv.Itoa(int(int32(sevNum))))
	}
	if sevText != "" {
		add("severity_text", sevText)
	}
	if len(span) > 0 {
		start := d.arena.Grow(2 * len(span))
		d.arena.Buf = hexAppend(d.arena.Buf, span)
		add("span_id", d.arena.Cut(start))
	}
	if len(trace) > 0 {
		start := d.arena.Grow(2 * len(trace))
		d.arena.Buf = hexAppend(d.arena.Buf, trace)
		add("trace_id", d.arena.Cut(start))
	}
	return append(entries, ferry.Entry{Labels: stream, Timestamp: t, Line: line, Metadata: d.metadata(scopeMeta)}), nil
}

// metadata returns scopeMeta with d.attrs set over it in order, as
// labels.Builder's Set would (a later label replaces an earlier one of the
// same name, an empty value deletes).
func (d *logsDecoder) metadata(scopeMeta labels.Labels) labels.Labels {
	fast := true
	d.sb.Reset()
	scopeMeta.Range(func(l labels.Label) { d.sb.Add(l.Name, l.Value) })
	for _, l := range d.attrs {
		if l.Value == "" {
			fast = false
			break
		}
		d.sb.Add(l.Name, l.Value)
	}
	if fast {
		if !d.sorted() {
			d.sb.Sort()
		}
		ls := d.sb.Labels()
		prev := ""
		ls.Range(func(l labels.Label) {
			if l.Name == prev {
				fast = false
			}
			prev = l.Name
		})
		if fast {
			return ls
		}
	}
	d.mb.Reset(scopeMeta)
	for _, l := range d.attrs {
		d.mb.Set(l.Name, l.Value)
	}
	return d.mb.Labels()
}

// merged returns the value of a message field that occurs again, next,
// after prev (seen reports whether it did occur before): both in order, as
// the generated code merges them when decoding, or next alone.
func merged(prev []byte, seen bool, next []byte) []byte {
	if seen {
		return append(append([]byte(nil), prev...), next...)
	}
	return next
}

func hexAppend(dst, src []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range src {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

// keyValue reads a KeyValue: its key and its value as a string.
func (d *logsDecoder) keyValue(b []byte) (string, string, error) {
	var key string
	var val []byte
	has := false
	for len(b) > 0 {
		f, rest, err := next(b)
		if err != nil {
			return "", "", err
		}
		b = rest
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case 1:
			if key, err = validString(f.bytes); err != nil {
				return "", "", err
			}
		case 2:
			val, has = merged(val, has, f.bytes), true
		}
	}
	v, err := d.anyValue(val)
	return key, v, err
}

// anyValue renders an AnyValue as convert does (otlpconv.ValueString).
// A plain string value costs nothing; others are formatted into the arena,
// and arrays and key/value lists go through the generated types.
func (d *logsDecoder) anyValue(b []byte) (string, error) {
	var last field
	var has bool
	for rest := b; len(rest) > 0; {
		f, r, err := next(rest)
		if err != nil {
			return "", err
		}
		rest = r
		ok := false
		switch f.num {
		case 1, 7:
			ok = f.typ == protowire.BytesType
			if ok && f.num == 1 && !utf8.Valid(f.bytes) {
				return "", errUTF8
			}
		case 2, 3, 8:
			ok = f.typ == protowire.VarintType
		case 4:
			ok = f.typ == protowire.Fixed64Type
		case 5, 6:
			if f.typ == protowire.BytesType {
				// Nested values: let the generated code decode (and
				// merge) the whole AnyValue.
				var v commonpb.AnyValue
				if err := proto.Unmarshal(b, &v); err != nil {
					return "", err
				}
				start := d.arena.Grow(64)
				d.arena.Buf = otlpconv.AppendValue(d.arena.Buf, &v)
				return d.arena.Cut(start), nil
			}
		}
		if ok {
			last, has = f, true
		}
	}
	if !has {
		return "", nil
	}
	if last.num == 1 {
		return viewString(last.bytes), nil
	}
	start := d.arena.Grow(32)
	switch last.num {
	case 1:
		return viewString(last.bytes), nil
	case 2:
		d.arena.Buf = strconv.AppendBool(d.arena.Buf, last.u64 != 0)
	case 3:
		d.arena.Buf = strconv.AppendInt(d.arena.Buf, int64(last.u64), 10)
	case 4:
		v := &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: math.Float64frombits(last.u64)}}
		d.arena.Buf = otlpconv.AppendValue(d.arena.Buf, v)
	case 7:
		v := &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: last.bytes}}
		d.arena.Buf = otlpconv.AppendValue(d.arena.Buf, v)
	case 8:
		return "", nil // a string index of the profiles dictionary: no string here
	default:
		return "", fmt.Errorf("unexpected AnyValue field %d", last.num)
	}
	return d.arena.Cut(start), nil
}

// sorted reports whether the labels added to d.sb, the scope's metadata
// (sorted) and then d.attrs, are in strict order of their names.
func (d *logsDecoder) sorted() bool {
	prev := d.scopeLast
	for _, l := range d.attrs {
		if l.Name <= prev {
			return false
		}
		prev = l.Name
	}
	return true
}
