package otlp

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/otlpconv"
	"github.com/ferrydev/ferry/sink"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// LogsSink exports entries as OTLP logs. Its zero value with a URL is
// ready to use after Start; fields must not change after Start.
//
// # Mapping
//
// The entries of one request are grouped by label set; each group is one
// ResourceLogs whose resource attributes are the labels (without those
// whose names start with "__"), named back to their OpenTelemetry names
// where the label is the form source/otlp gives a promoted attribute
// ("service_name" is sent as "service.name"; see otlpconv.AttributeName).
// Each entry is one LogRecord: the line is its string body, the timestamp
// its time_unix_nano (the time of sending when zero), and its metadata its
// attributes, except severity_text, severity_number, trace_id and span_id
// (hex), flags and event_name, which fill the record's own fields when
// they parse. This is the inverse of source/otlp's mapping, so entries
// received over OTLP leave as they came, up to attribute order and types.
type LogsSink struct {
	Config
	e exporter[ferry.Entry]
}

var (
	_ sink.Sink[ferry.Entry] = (*LogsSink)(nil)
	_ ferry.Starter          = (*LogsSink)(nil)
)

// Validate reports configuration errors: no or an invalid URL, negative
// sizes or durations, an invalid HTTP client configuration.
func (s *LogsSink) Validate() error { return s.Config.validate("logs") }

// Start validates the configuration, builds the HTTP client and starts the
// sending goroutines, which report through rep.
func (s *LogsSink) Start(ctx context.Context, rep ferry.Reporter) error {
	return s.e.start(&s.Config, "logs", logsCodec{}, rep)
}

// Send queues the entries of b and returns; it blocks while the queue of
// sealed requests is full, until ctx is done. b is acknowledged once all
// its entries were delivered or dropped. Before Start it acknowledges b
// with ErrNotStarted and returns it; after Close, ErrClosed.
func (s *LogsSink) Send(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
	return s.e.send(ctx, b)
}

// Close sends everything held within ctx's deadline and acknowledges what
// could not be sent by then with ErrClosed. It is safe without Start and
// safe twice.
func (s *LogsSink) Close(ctx context.Context) error { return s.e.close(ctx) }

type logsCodec struct{}

func (logsCodec) size(e *ferry.Entry) int          { return e.Size() }
func (logsCodec) newEncoder() encoder[ferry.Entry] { return &logsEncoder{} }

// Field numbers of the OTLP logs messages.
const (
	fResourceLogs   = 1 // LogsData
	fResource       = 1 // ResourceLogs
	fScopeLogs      = 2 // ResourceLogs
	fAttributes     = 1 // Resource
	fLogRecords     = 2 // ScopeLogs
	fTime           = 1 // LogRecord
	fSeverityNumber = 2
	fSeverityText   = 3
	fBody           = 5
	fRecAttributes  = 6
	fFlags          = 8
	fTraceID        = 9
	fSpanID         = 10
	fEventName      = 12
	fKey            = 1 // KeyValue
	fValue          = 2
	fStringValue    = 1 // AnyValue
)

// logsEncoder encodes entries as an ExportLogsServiceRequest.
type logsEncoder struct {
	groups []logGroup // the first used are this request's
	used   int
	byHash map[uint64]int
	recs   []recordFields // each item's special fields and size
	attrs  []string
}

type logGroup struct {
	labels  labels.Labels
	items   []int
	next    int // next group with the same hash, -1 at the end
	resSize int
	recSize int // bytes of the ScopeLogs' records
}

func sizeString(s string) int { return 1 + protowire.SizeBytes(len(s)) } // field < 16

func sizeKV(k, v string) int {
	return sizeString(k) + 1 + protowire.SizeBytes(sizeString(v))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendKV(b []byte, num protowire.Number, k, v string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeKV(k, v)))
	b = appendString(b, fKey, k)
	b = protowire.AppendTag(b, fValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeString(v)))
	return appendString(b, fStringValue, v)
}

// special metadata fields of a record, parsed, and the record's size.
type recordFields struct {
	size      int
	sevText   string
	sevNum    uint64
	hasSevNum bool
	hasFlags  bool
	flags     uint32
	traceID   [16]byte
	spanID    [8]byte
	hasTrace  bool
	hasSpan   bool
	eventName string
}

// special reports whether metadata label l fills a field of the record
// (setting it in f) rather than an attribute.
func special(l labels.Label, f *recordFields) bool {
	switch l.Name {
	case "severity_text":
		f.sevText = l.Value
		return true
	case "severity_number":
		n, err := strconv.ParseUint(l.Value, 10, 31)
		if err != nil {
			return false
		}
		f.sevNum, f.hasSevNum = n, true
		return true
	case "trace_id":
		if !hexID(f.traceID[:], l.Value) {
			return false
		}
		f.hasTrace = true
		return true
	case "span_id":
		if !hexID(f.spanID[:], l.Value) {
			return false
		}
		f.hasSpan = true
		return true
	case "flags":
		n, err := strconv.ParseUint(l.Value, 10, 32)
		if err != nil {
			return false
		}
		f.flags, f.hasFlags = uint32(n), true
		return true
	case "event_name":
		f.eventName = l.Value
		return true
	}
	return false
}

// hexID decodes s, an ID of len(id) bytes in hex, into id, and reports
// whether it could.
func hexID(id []byte, s string) bool {
	if len(s) != 2*len(id) {
		return false
	}
	_, err := hex.Decode(id, []byte(s))
	return err == nil
}

// isSpecial reports whether l filled a field of f when f was parsed.
func isSpecial(l labels.Label, f *recordFields) bool {
	switch l.Name {
	case "severity_text", "event_name":
		return true
	case "severity_number":
		return f.hasSevNum
	case "trace_id":
		return f.hasTrace
	case "span_id":
		return f.hasSpan
	case "flags":
		return f.hasFlags
	}
	return false
}

// parseRecord parses the special fields of e into f and sets f.size to
// the encoded size of e as a LogRecord.
func parseRecord(e *ferry.Entry, f *recordFields) {
	*f = recordFields{}
	n := 1 + 8 // time
	n += 1 + protowire.SizeBytes(sizeString(e.Line))
	e.Metadata.Range(func(l labels.Label) {
		if !special(l, f) {
			n += 1 + protowire.SizeBytes(sizeKV(l.Name, l.Value))
		}
	})
	if f.sevText != "" {
		n += sizeString(f.sevText)
	}
	if f.sevNum != 0 {
		n += 1 + protowire.SizeVarint(f.sevNum)
	}
	if f.flags != 0 {
		n += 1 + 4
	}
	if f.hasTrace {
		n += 1 + 1 + 16
	}
	if f.hasSpan {
		n += 1 + 1 + 8
	}
	if f.eventName != "" {
		n += sizeString(f.eventName)
	}
	f.size = n
}

func appendRecord(b []byte, e *ferry.Entry, f *recordFields, now time.Time) []byte {
	b = protowire.AppendTag(b, fLogRecords, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(f.size))
	ts := e.Timestamp
	if ts.IsZero() {
		ts = now
	}
	b = protowire.AppendTag(b, fTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(ts.UnixNano()))
	if f.sevNum != 0 {
		b = protowire.AppendTag(b, fSeverityNumber, protowire.VarintType)
		b = protowire.AppendVarint(b, f.sevNum)
	}
	if f.sevText != "" {
		b = appendString(b, fSeverityText, f.sevText)
	}
	b = protowire.AppendTag(b, fBody, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeString(e.Line)))
	b = appendString(b, fStringValue, e.Line)
	e.Metadata.Range(func(l labels.Label) {
		if !isSpecial(l, f) {
			b = appendKV(b, fRecAttributes, l.Name, l.Value)
		}
	})
	if f.flags != 0 {
		b = protowire.AppendTag(b, fFlags, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, f.flags)
	}
	if f.hasTrace {
		b = protowire.AppendTag(b, fTraceID, protowire.BytesType)
		b = protowire.AppendBytes(b, f.traceID[:])
	}
	if f.hasSpan {
		b = protowire.AppendTag(b, fSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, f.spanID[:])
	}
	if f.eventName != "" {
		b = appendString(b, fEventName, f.eventName)
	}
	return b
}

// resourceAttr returns the attribute name of label name, or "" for labels
// that are not sent.
func resourceAttr(name string) string {
	if strings.HasPrefix(name, "__") {
		return ""
	}
	return otlpconv.AttributeName(name)
}

func (le *logsEncoder) encode(dst []byte, items []ferry.Entry, now time.Time) []byte {
	if le.byHash == nil {
		le.byHash = make(map[uint64]int)
	}
	le.group(items)
	groups := le.groups[:le.used]
	if cap(le.recs) < len(items) {
		le.recs = make([]recordFields, len(items))
	}
	recs := le.recs[:len(items)]
	for gi := range groups {
		g := &groups[gi]
		g.resSize = 0
		g.labels.Range(func(l labels.Label) {
			if a := resourceAttr(l.Name); a != "" {
				g.resSize += 1 + protowire.SizeBytes(sizeKV(a, l.Value))
			}
		})
		g.recSize = 0
		for _, i := range g.items {
			parseRecord(&items[i], &recs[i])
			g.recSize += 1 + protowire.SizeBytes(recs[i].size)
		}
	}
	for gi := range groups {
		g := &groups[gi]
		rlSize := 1 + protowire.SizeBytes(g.resSize) + 1 + protowire.SizeBytes(g.recSize)
		dst = protowire.AppendTag(dst, fResourceLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(rlSize))
		dst = protowire.AppendTag(dst, fResource, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(g.resSize))
		g.labels.Range(func(l labels.Label) {
			if a := resourceAttr(l.Name); a != "" {
				dst = appendKV(dst, fAttributes, a, l.Value)
			}
		})
		dst = protowire.AppendTag(dst, fScopeLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(g.recSize))
		for _, i := range g.items {
			dst = appendRecord(dst, &items[i], &recs[i], now)
		}
	}
	return dst
}

// group sorts the indexes of items into le.groups by label set, in order
// of first appearance.
func (le *logsEncoder) group(items []ferry.Entry) {
	for i := range le.groups {
		le.groups[i].labels = labels.EmptyLabels()
		le.groups[i].items = le.groups[i].items[:0]
	}
	used := 0
	clear(le.byHash)
	prev := -1
	for i := range items {
		ls := items[i].Labels
		// Runs of the same stream are the common case.
		if prev >= 0 && labels.Equal(le.groups[prev].labels, ls) {
			le.groups[prev].items = append(le.groups[prev].items, i)
			continue
		}
		h := ls.Hash()
		gi, ok := le.byHash[h]
		for ok && gi >= 0 && !labels.Equal(le.groups[gi].labels, ls) {
			gi = le.groups[gi].next
		}
		if !ok || gi < 0 {
			if used == len(le.groups) {
				le.groups = append(le.groups, logGroup{})
			}
			gi = used
			used++
			g := &le.groups[gi]
			g.labels = ls
			g.next = -1
			if head, ok := le.byHash[h]; ok {
				g.next = head
			}
			le.byHash[h] = gi
		}
		le.groups[gi].items = append(le.groups[gi].items, i)
		prev = gi
	}
	le.used = used
}
