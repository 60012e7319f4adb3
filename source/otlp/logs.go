package otlp

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/arena"
	"github.com/ferrydev/ferry/internal/otlpconv"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// LogsPath is the path of OTLP/HTTP logs.
const LogsPath = "/v1/logs"

// UnknownService is the service_name label of entries whose resource has
// no service.name, as Loki sets it.
const UnknownService = "unknown_service"

// LogsReceiver receives OTLP logs and emits them as entries. Its zero value
// is ready to use (as an http.Handler, after Start); fields must not change
// once it is started.
//
// # Mapping
//
// Every log record becomes one ferry.Entry, as Loki's OTLP endpoint stores
// it:
//
//   - Labels: the resource attributes named in ResourceLabels and the
//     scope attributes named in ScopeLabels, their names made label names
//     ("service.name" becomes "service_name": every character other than
//     [a-zA-Z0-9_] becomes "_"), plus Labels. When service.name is
//     promoted but absent, service_name is "unknown_service".
//   - Metadata (Loki's structured metadata): every other resource
//     attribute, the scope's name and version (scope_name, scope_version)
//     and other attributes, the record's attributes, severity_text,
//     severity_number, trace_id and span_id (lowercase hex), flags and
//     event_name when set. Names are made label names as above; a later
//     source replaces an earlier one of the same name (record over scope
//     over resource). Non-string values are rendered as strings (numbers in
//     decimal, arrays and maps as JSON, bytes as base64).
//   - Line: the body when it is a string, its JSON rendering otherwise.
//   - Timestamp: time_unix_nano, or observed_time_unix_nano when that is
//     zero; zero when both are (a sink then uses the time of sending).
//
// A record whose timestamp does not fit in time.Time's nanoseconds (after
// the year 2262) is rejected and counted in the answer's partial_success.
type LogsReceiver struct {
	Limits
	// Server, when set, serves the receiver at /v1/logs from Start to
	// Close. Without it, mount the receiver on a mux of your own.
	Server *Server
	// ResourceLabels are the resource attributes promoted to stream
	// labels. Nil means otlpconv's DefaultResourceLabels, Loki 3's default
	// list (service.name, service.namespace, service.instance.id,
	// deployment.environment, cloud.region, cloud.availability_zone,
	// container.name and the k8s.* names of cluster, namespace, pod,
	// container and workloads); an empty non-nil slice promotes none.
	ResourceLabels []string
	// ScopeLabels are the instrumentation scope attributes promoted to
	// stream labels (default none), named as resource attributes are; a
	// scope attribute replaces a resource attribute of the same name.
	ScopeLabels []string
	// Labels are added to every entry's labels, replacing promoted
	// attributes of the same name.
	Labels labels.Labels

	c            core[ferry.Entry]
	promote      map[string]bool
	scopePromote map[string]bool
}

var (
	_ source.Source[ferry.Entry] = (*LogsReceiver)(nil)
	_ source.Closer              = (*LogsReceiver)(nil)
	_ ferry.Starter              = (*LogsReceiver)(nil)
	_ http.Handler               = (*LogsReceiver)(nil)
)

// Validate reports configuration errors: negative limits, invalid label
// names in Labels, a Server without an address.
func (r *LogsReceiver) Validate() error {
	return validateReceiver("logs", &r.Limits, r.Labels, r.Server)
}

// Start validates the configuration, keeps rep for the receiver's life
// and, with a Server, starts serving /v1/logs there. Requests before the
// first Run wait for it up to FullWait, and are answered 503 then. Start
// is a no-op on a started receiver and returns ErrClosed after Close.
func (r *LogsReceiver) Start(ctx context.Context, rep ferry.Reporter) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return r.c.start(rep, "logs", &r.Limits, r.Server, r, LogsPath, func() {
		names := r.ResourceLabels
		if names == nil {
			names = otlpconv.DefaultResourceLabels
		}
		r.promote = make(map[string]bool, len(names))
		for _, n := range names {
			r.promote[n] = true
		}
		if len(r.ScopeLabels) > 0 {
			r.scopePromote = make(map[string]bool, len(r.ScopeLabels))
			for _, n := range r.ScopeLabels {
				r.scopePromote[n] = true
			}
		}
	})
}

// Run emits the entries of the requests received until ctx is done, and
// returns once no request can send any more. It returns ErrNotStarted
// before Start, ErrClosed after Close, and an error if it already runs.
func (r *LogsReceiver) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	return r.c.run(ctx, out)
}

// Close stops serving on the Server (the last receiver of a Server shuts
// it down, waiting for requests in progress). It is safe without Start and
// safe twice.
func (r *LogsReceiver) Close(ctx context.Context) error {
	return r.c.close(ctx, LogsPath)
}

// ServeHTTP handles one export request.
func (r *LogsReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.c.serve(w, req, "logs", "rejectedLogRecords", r.decode)
}

// decode returns the entries of a request's body.
func (r *LogsReceiver) decode(bp *[]byte, body []byte, enc encoding) (decoded[ferry.Entry], error) {
	d := logsDecoder{promote: r.promote, scopePromote: r.scopePromote, extra: r.Labels}
	var entries []ferry.Entry
	var err error
	if enc == encProto {
		// The buffer goes to the entries, which are cut from it: it is
		// not pooled again.
		entries, err = d.decodeProto(body, nil, true)
	} else {
		var ld logspb.LogsData
		if err = decodeLogs(body, enc, &ld); err == nil {
			entries = d.convert(&ld, nil)
		}
		r.c.bufs.Put(bp)
	}
	return decoded[ferry.Entry]{items: entries, n: int64(len(entries)), rejected: d.rejected, msg: d.msg}, err
}

// encodingOf returns the encoding the request declares.
func encodingOf(req *http.Request) encoding {
	if ct := req.Header.Get("Content-Type"); len(ct) >= 16 && ct[:16] == "application/json" {
		return encJSON
	}
	return encProto
}

var base64Std = base64.StdEncoding

var (
	protoUnmarshal = proto.UnmarshalOptions{}
	jsonUnmarshal  = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// decodeLogs decodes body into ld.
func decodeLogs(body []byte, enc encoding, ld *logspb.LogsData) error {
	if enc == encProto {
		return protoUnmarshal.Unmarshal(body, ld)
	}
	if err := jsonUnmarshal.Unmarshal(body, ld); err != nil {
		return err
	}
	for _, rl := range ld.ResourceLogs {
		for _, sl := range rl.GetScopeLogs() {
			for _, lr := range sl.GetLogRecords() {
				var err error
				if lr.TraceId, err = hexID(lr.TraceId, 16); err != nil {
					return fmt.Errorf("traceId: %w", err)
				}
				if lr.SpanId, err = hexID(lr.SpanId, 8); err != nil {
					return fmt.Errorf("spanId: %w", err)
				}
			}
		}
	}
	return nil
}

// hexID recovers an ID of n bytes that OTLP JSON writes in hex, from what
// protojson made of it: protojson reads bytes fields as base64, and a hex
// string of 2n characters is valid base64 of 3n/2 bytes, so re-encoding
// those bytes in base64 gives the hex text back. IDs already of n bytes
// (a sender that used base64) are kept.
func hexID(b []byte, n int) ([]byte, error) {
	switch len(b) {
	case 0, n:
		return b, nil
	case n * 3 / 2:
		txt := base64Std.AppendEncode(make([]byte, 0, 2*n), b)
		id := make([]byte, n)
		if _, err := hex.Decode(id, txt); err != nil {
			return nil, fmt.Errorf("%q is not %d hex digits", txt, 2*n)
		}
		return id, nil
	}
	return nil, fmt.Errorf("want %d hex digits", 2*n)
}

// logsDecoder converts one request's LogsData into entries.
type logsDecoder struct {
	promote  map[string]bool
	extra    labels.Labels
	names    otlpconv.Namer
	lb       *labels.Builder
	mb       *labels.Builder
	rejected int64
	msg      string
	// decodeProto's state
	arena        arena.Arena
	sb           labels.ScratchBuilder
	attrs        []labels.Label
	scopeName    string
	scopeVersion string
	scopeLast    string // the last name of the scope's metadata
	scopePromote map[string]bool
	scopeLbls    []labels.Label // promoted scope attributes
}

// scopeStream returns the stream labels of a scope: stream with the
// promoted scope attributes in d.scopeLbls, Labels winning.
func (d *logsDecoder) scopeStream(stream labels.Labels) labels.Labels {
	if len(d.scopeLbls) == 0 {
		return stream
	}
	d.lb.Reset(stream)
	for _, l := range d.scopeLbls {
		d.lb.Set(l.Name, l.Value)
	}
	d.extra.Range(func(l labels.Label) { d.lb.Set(l.Name, l.Value) })
	return d.lb.Labels()
}

// convert appends the entries of ld to entries.
func (d *logsDecoder) convert(ld *logspb.LogsData, entries []ferry.Entry) []ferry.Entry {
	if d.lb == nil {
		d.lb = labels.NewBuilder(labels.EmptyLabels())
		d.mb = labels.NewBuilder(labels.EmptyLabels())
	}
	n := 0
	for _, rl := range ld.ResourceLogs {
		for _, sl := range rl.GetScopeLogs() {
			n += len(sl.GetLogRecords())
		}
	}
	if entries == nil {
		entries = make([]ferry.Entry, 0, n)
	}
	for _, rl := range ld.ResourceLogs {
		// Stream labels and resource metadata, once per resource.
		d.lb.Reset(labels.EmptyLabels())
		d.mb.Reset(labels.EmptyLabels())
		service := false
		for _, kv := range rl.GetResource().GetAttributes() {
			name := d.names.Name(kv.GetKey())
			if name == "" {
				continue
			}
			if d.promote[kv.GetKey()] {
				if kv.GetKey() == "service.name" {
					service = true
				}
				d.lb.Set(name, otlpconv.ValueString(kv.GetValue()))
			} else {
				d.mb.Set(name, otlpconv.ValueString(kv.GetValue()))
			}
		}
		if !service && d.promote["service.name"] {
			d.lb.Set("service_name", UnknownService)
		}
		d.extra.Range(func(l labels.Label) { d.lb.Set(l.Name, l.Value) })
		stream := d.lb.Labels()
		resMeta := d.mb.Labels()

		for _, sl := range rl.GetScopeLogs() {
			scope := sl.GetScope()
			d.mb.Reset(resMeta)
			if scope.GetName() != "" {
				d.mb.Set("scope_name", scope.GetName())
			}
			if scope.GetVersion() != "" {
				d.mb.Set("scope_version", scope.GetVersion())
			}
			d.scopeLbls = d.scopeLbls[:0]
			for _, kv := range scope.GetAttributes() {
				if name := d.names.Name(kv.GetKey()); name != "" {
					if d.scopePromote[kv.GetKey()] {
						d.scopeLbls = append(d.scopeLbls, labels.Label{Name: name, Value: otlpconv.ValueString(kv.GetValue())})
					} else {
						d.mb.Set(name, otlpconv.ValueString(kv.GetValue()))
					}
				}
			}
			scopeMeta := d.mb.Labels()
			stream := d.scopeStream(stream)
			for _, lr := range sl.GetLogRecords() {
				ns := lr.GetTimeUnixNano()
				if ns == 0 {
					ns = lr.GetObservedTimeUnixNano()
				}
				if ns > math.MaxInt64 {
					d.reject("timestamp after 2262")
					continue
				}
				var ts time.Time
				if ns != 0 {
					ts = time.Unix(0, int64(ns))
				}
				d.mb.Reset(scopeMeta)
				for _, kv := range lr.GetAttributes() {
					if name := d.names.Name(kv.GetKey()); name != "" {
						d.mb.Set(name, otlpconv.ValueString(kv.GetValue()))
					}
				}
				if lr.GetSeverityText() != "" {
					d.mb.Set("severity_text", lr.GetSeverityText())
				}
				if sn := lr.GetSeverityNumber(); sn != 0 {
					d.mb.Set("severity_number", strconv.Itoa(int(sn)))
				}
				if id := lr.GetTraceId(); len(id) > 0 {
					d.mb.Set("trace_id", hex.EncodeToString(id))
				}
				if id := lr.GetSpanId(); len(id) > 0 {
					d.mb.Set("span_id", hex.EncodeToString(id))
				}
				if f := lr.GetFlags(); f != 0 {
					d.mb.Set("flags", strconv.FormatUint(uint64(f), 10))
				}
				if ev := lr.GetEventName(); ev != "" {
					d.mb.Set("event_name", ev)
				}
				entries = append(entries, ferry.Entry{
					Labels:    stream,
					Timestamp: ts,
					Line:      otlpconv.ValueString(lr.GetBody()),
					Metadata:  d.mb.Labels(),
				})
			}
		}
	}
	return entries
}

func (d *logsDecoder) reject(why string) {
	d.rejected++
	if d.msg == "" {
		d.msg = "records rejected: " + why
	}
}
