// Package otlp receives OpenTelemetry logs and metrics over OTLP/HTTP, as
// the Collector's otlp receiver does, and emits them into a pipeline as
// ferry.Entry and ferry.Sample.
//
// A LogsReceiver (path /v1/logs) and a MetricsReceiver (path /v1/metrics)
// are each an http.Handler and a source: mount them on any mux, or give both
// the same Server and they listen on its address, started by the first
// receiver's Start and stopped by the last one's Close:
//
//	srv := &otlp.Server{Addr: "127.0.0.1:4318"}
//	logs := &otlp.LogsReceiver{Server: srv}
//	metrics := &otlp.MetricsReceiver{Server: srv}
//
// # Requests
//
// Bodies are protobuf (Content-Type application/x-protobuf) or JSON
// (application/json) encodings of ExportLogsServiceRequest and
// ExportMetricsServiceRequest, optionally with Content-Encoding gzip.
// JSON follows the OTLP rules: field names in lowerCamelCase (the proto
// names are accepted too), enums as integers (names accepted), 64-bit
// integers as strings or numbers, trace and span IDs in hex. Unknown fields
// are ignored in both encodings.
//
// # Responses
//
// Responses are in the encoding of the request, as the OTLP specification
// asks:
//
//   - 200 with an Export*ServiceResponse: the data was delivered downstream
//     (the batch's acknowledgement settled). When some records or points
//     were rejected (see the mapping rules of each receiver) or dropped for
//     good downstream, its partial_success counts them and says why; the
//     client must not send them again.
//   - 400 with a google.rpc.Status: the body is malformed; 413: it is larger
//     than MaxBodySize (or decompresses to more than MaxDecodedSize); 415:
//     unsupported Content-Type or Content-Encoding; 405: not a POST.
//   - 429 with Retry-After: the pipeline did not take the batch within
//     FullWait. Nothing was kept; the client retries.
//   - 503 with Retry-After: the receiver is not running, or the batch was
//     not acknowledged as delivered within RequestTimeout (it may still be
//     delivered: a retry may duplicate it, never lose it).
//
// A request is acknowledged only after its batch settled, so a client's
// retry is always safe: at-least-once from the client to the sinks.
//
// OTLP/gRPC is not served: a gRPC server adds google.golang.org/grpc to
// every program that imports the package (1.8 MB of a stripped binary,
// measured next to this package's 0.7 MB), and every OTLP exporter speaks
// OTLP/HTTP. For the same reason requests are decoded as
// opentelemetry.proto.logs.v1.LogsData and metrics.v1.MetricsData, which
// are wire-compatible with the Export*ServiceRequest messages, and the
// responses are encoded by hand: the generated collector/*/v1 packages
// import gRPC and grpc-gateway.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/internal/otlpconv"
	"github.com/ferrydev/ferry/internal/receiver"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// Defaults of the receiver fields left at zero.
const (
	DefaultMaxBodySize    = 10 << 20
	DefaultMaxDecodedSize = 64 << 20
	DefaultFullWait       = 500 * time.Millisecond
	DefaultRequestTimeout = 10 * time.Second
	DefaultRetryAfter     = time.Second
)

// Limits is the part of the configuration both receivers share. Its zero
// value takes every default.
type Limits struct {
	// MaxBodySize is the largest request body accepted, as sent (default
	// 10 MiB); larger ones get 413.
	MaxBodySize int64
	// MaxDecodedSize is the largest body accepted after gzip decompression
	// (default 64 MiB).
	MaxDecodedSize int64
	// FullWait is how long a request waits for room in the pipeline before
	// it is answered 429 (default 500ms; negative answers 429 at once),
	// and, between Start and the first Run, for that Run before it is
	// answered 503.
	FullWait time.Duration
	// RequestTimeout is how long a request waits for its batch to be
	// delivered before it is answered 503 (default 10s).
	RequestTimeout time.Duration
	// RetryAfter is the delay the Retry-After header of 429 and 503
	// answers gives (default 1s; rounded up to whole seconds).
	RetryAfter time.Duration
}

func (l *Limits) validate(kind string) error {
	if l.MaxBodySize < 0 || l.MaxDecodedSize < 0 || l.RequestTimeout < 0 || l.RetryAfter < 0 {
		return fmt.Errorf("otlp: %s: MaxBodySize, MaxDecodedSize, RequestTimeout and RetryAfter must not be negative", kind)
	}
	return nil
}

// validateReceiver reports the configuration errors of a receiver of
// kind: negative limits, invalid label names in extra, a Server without
// an address.
func validateReceiver(kind string, l *Limits, extra labels.Labels, srv *Server) error {
	var errs []error
	if err := l.validate(kind); err != nil {
		errs = append(errs, err)
	}
	extra.Range(func(lb labels.Label) {
		if otlpconv.LabelName(lb.Name) != lb.Name {
			errs = append(errs, fmt.Errorf("otlp: %s: label name %q is invalid", kind, lb.Name))
		}
	})
	if srv != nil {
		if err := srv.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func orDefault[T int64 | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

// ErrNotStarted is returned by a receiver's Run before Start, and
// ErrClosed by its Start and Run after Close.
var (
	ErrNotStarted = fmt.Errorf("otlp: Run before Start: %w", ferry.ErrNotStarted)
	ErrClosed     = fmt.Errorf("otlp: receiver %w", ferry.ErrClosed)
)

// core is the state both receivers share: their lifecycle, the outlet to
// the running Run, and the Server they are attached to.
type core[T any] struct {
	kind   string // "logs" or "metrics", for messages
	limits *Limits
	life   lifecycle.State
	outlet receiver.Outlet[T]
	server *Server
	bufs   receiver.Buffers
}

// start runs prepare, keeps r for the receiver's life and, with srv,
// serves h at path there. kind and limits are the receiver's. prepare sets
// what ServeHTTP reads; it runs once.
func (c *core[T]) start(r ferry.Reporter, kind string, limits *Limits, srv *Server, h http.Handler, path string, prepare func()) error {
	return c.life.Start(ErrClosed, func() error {
		if srv != nil {
			if err := srv.attach(path, h); err != nil {
				return err
			}
		}
		c.kind, c.limits, c.server = kind, limits, srv
		prepare()
		c.outlet.Open("otlp", r)
		return nil
	})
}

func (c *core[T]) close(ctx context.Context, path string) error {
	return c.life.Close(func(started bool) error {
		c.outlet.Close()
		if !started || c.server == nil {
			return nil
		}
		return c.server.detach(ctx, path)
	})
}

// run makes requests emit on out until ctx is done, then waits for the
// requests that are sending, so that nothing is sent after it returns.
func (c *core[T]) run(ctx context.Context, out chan<- ferry.Batch[T]) error {
	if err := c.life.Err(ErrNotStarted, ErrClosed); err != nil {
		return err
	}
	return c.outlet.Run(ctx, out)
}

// decoded is what a request's body decoded to: the items, the number of
// records or points they came from, and what was rejected before delivery.
type decoded[T any] struct {
	items    []T
	n        int64
	rejected int64
	msg      string
}

// serve handles one export request for a receiver of kind: decode turns
// the body, read into bp from the pool, into items (it gives bp back to
// the pool or keeps it), and field is the JSON name of the rejected count
// in the answer.
func (c *core[T]) serve(w http.ResponseWriter, req *http.Request, kind, field string, decode func(bp *[]byte, body []byte, enc encoding) (decoded[T], error)) {
	if !c.life.Started() {
		c.writeError(w, encodingOf(req), http.StatusServiceUnavailable, "otlp: "+kind+" receiver not started", true)
		return
	}
	bp, body, enc, err := c.readRequest(w, req)
	if err != nil {
		c.answerError(w, req, enc, err)
		return
	}
	dec, err := decode(bp, body, enc)
	if err != nil {
		c.answerError(w, req, enc, receiver.Errorf(http.StatusBadRequest, "otlp: malformed %s request: %v", kind, err))
		return
	}
	if len(dec.items) > 0 {
		lim := c.limits
		fullWait := max(0, orDefault(lim.FullWait, DefaultFullWait))
		err = c.outlet.Push(req.Context(), dec.items, receiver.PushOptions{
			FullWait: fullWait, WaitForAck: true, AckTimeout: orDefault(lim.RequestTimeout, DefaultRequestTimeout),
		})
	}
	switch {
	case err == nil:
		writeSuccess(w, enc, dec.rejected, dec.msg, field)
	case ferry.IsPermanent(err):
		msg := "dropped downstream: " + err.Error()
		if dec.msg != "" {
			msg = dec.msg + "; " + msg
		}
		writeSuccess(w, enc, dec.rejected+dec.n, msg, field)
	default:
		if status, retry := receiver.Status(err); status != 0 {
			c.writeError(w, enc, status, err.Error(), retry)
		}
	}
}

// answerError answers a request that failed before delivery.
func (c *core[T]) answerError(w http.ResponseWriter, req *http.Request, enc encoding, err error) {
	status, _ := receiver.Status(err)
	c.outlet.Reporter().Logger().Debug("otlp: request rejected", "kind", c.kind, "status", status, "remote", req.RemoteAddr, "err", err)
	c.writeError(w, enc, status, err.Error(), false)
}

// encoding is the body format of a request, and so of its answer.
type encoding int

const (
	encProto encoding = iota
	encJSON
)

// readRequest checks the method and headers of req and returns its body,
// decompressed, in a buffer from the pool (give it back with c.bufs.Put),
// and its encoding.
func (c *core[T]) readRequest(w http.ResponseWriter, req *http.Request) (*[]byte, []byte, encoding, error) {
	enc := encProto
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if mt == "application/json" {
		enc = encJSON
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, nil, enc, receiver.Errorf(http.StatusMethodNotAllowed, "otlp: only POST is accepted")
	}
	if mt != "application/json" && mt != "application/x-protobuf" && mt != "application/protobuf" {
		return nil, nil, enc, receiver.Errorf(http.StatusUnsupportedMediaType,
			"otlp: unsupported Content-Type %q (want application/x-protobuf or application/json)", req.Header.Get("Content-Type"))
	}
	var gz bool
	switch ce := req.Header.Get("Content-Encoding"); ce {
	case "", "identity":
	case "gzip":
		gz = true
	default:
		return nil, nil, enc, receiver.Errorf(http.StatusUnsupportedMediaType, "otlp: unsupported Content-Encoding %q (want gzip or none)", ce)
	}
	bp := c.bufs.Get()
	body, err := receiver.ReadBody(w, req, orDefault(c.limits.MaxBodySize, DefaultMaxBodySize), (*bp)[:0], "otlp")
	*bp = body
	if err != nil || !gz {
		if err != nil {
			c.bufs.Put(bp)
			bp = nil
		}
		return bp, body, enc, err
	}
	dp := c.bufs.Get()
	decoded, err := receiver.Gunzip(body, orDefault(c.limits.MaxDecodedSize, DefaultMaxDecodedSize), (*dp)[:0], "otlp")
	*dp = decoded
	c.bufs.Put(bp)
	if err != nil {
		c.bufs.Put(dp)
		return nil, nil, enc, err
	}
	return dp, decoded, enc, nil
}

// grpcCode is the google.rpc.Code of an HTTP status, for Status bodies.
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return 3 // INVALID_ARGUMENT
	case http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	case http.StatusMethodNotAllowed:
		return 12 // UNIMPLEMENTED
	}
	return 2 // UNKNOWN
}

// writeError answers status with a google.rpc.Status body in enc.
func (c *core[T]) writeError(w http.ResponseWriter, enc encoding, status int, msg string, retryAfter bool) {
	if retryAfter {
		d := DefaultRetryAfter
		if c.limits != nil {
			d = orDefault(c.limits.RetryAfter, DefaultRetryAfter)
		}
		receiver.SetRetryAfter(w.Header(), d)
	}
	var body []byte
	if enc == encJSON {
		w.Header().Set("Content-Type", "application/json")
		body = fmt.Appendf(nil, `{"code":%d,"message":`, grpcCode(status))
		body = otlpconv.AppendJSONString(body, msg)
		body = append(body, '}')
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		body = protowire.AppendTag(body, 1, protowire.VarintType)
		body = protowire.AppendVarint(body, uint64(grpcCode(status)))
		body = protowire.AppendTag(body, 2, protowire.BytesType)
		body = protowire.AppendString(body, msg)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// writeSuccess answers 200 with an Export*ServiceResponse in enc, with a
// partial_success when rejected > 0. rejectedField is the JSON name of the
// count ("rejectedLogRecords" or "rejectedDataPoints").
func writeSuccess(w http.ResponseWriter, enc encoding, rejected int64, msg, rejectedField string) {
	var body []byte
	if enc == encJSON {
		w.Header().Set("Content-Type", "application/json")
		if rejected > 0 || msg != "" {
			body = fmt.Appendf(body, `{"partialSuccess":{"%s":"%d","errorMessage":`, rejectedField, rejected)
			body = otlpconv.AppendJSONString(body, msg)
			body = append(body, "}}"...)
		} else {
			body = append(body, "{}"...)
		}
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		if rejected > 0 || msg != "" {
			var ps []byte
			if rejected > 0 {
				ps = protowire.AppendTag(ps, 1, protowire.VarintType)
				ps = protowire.AppendVarint(ps, uint64(rejected))
			}
			if msg != "" {
				ps = protowire.AppendTag(ps, 2, protowire.BytesType)
				ps = protowire.AppendString(ps, msg)
			}
			body = protowire.AppendTag(body, 1, protowire.BytesType)
			body = protowire.AppendBytes(body, ps)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// Server listens on one address and serves the receivers that name it:
// /v1/logs and /v1/metrics, and /ready, answering 200. The first receiver's
// Start listens; the last receiver's Close shuts it down, waiting for
// requests in progress up to ShutdownTimeout or the Close context's
// deadline. A path whose receiver is not attached answers 404.
type Server struct {
	// Addr to listen on, such as "127.0.0.1:4318". Ignored if Listener is
	// set.
	Addr string
	// Listener, when set, is served instead of listening on Addr. The
	// server closes it.
	Listener net.Listener
	// ShutdownTimeout bounds how long Close waits for requests in progress
	// (default 5s).
	ShutdownTimeout time.Duration

	mu       sync.Mutex
	handlers map[string]http.Handler
	serving  *receiver.Serving // while a receiver is attached
}

func (s *Server) validate() error {
	if s.Addr == "" && s.Listener == nil {
		return errors.New("otlp: Server needs Addr or Listener")
	}
	return nil
}

// ListenAddr returns the address the server listens on while a receiver
// is started, nil otherwise.
func (s *Server) ListenAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving == nil {
		return nil
	}
	return s.serving.Addr()
}

func (s *Server) attach(path string, h http.Handler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handlers[path] != nil {
		return fmt.Errorf("otlp: Server already serves %s", path)
	}
	if s.serving == nil {
		if err := s.validate(); err != nil {
			return err
		}
		serving, err := receiver.Serve(s.Addr, s.Listener, http.HandlerFunc(s.serve), nil)
		if err != nil {
			return fmt.Errorf("otlp: %w", err)
		}
		s.serving = serving
	}
	if s.handlers == nil {
		s.handlers = make(map[string]http.Handler)
	}
	s.handlers[path] = h
	return nil
}

func (s *Server) detach(ctx context.Context, path string) error {
	s.mu.Lock()
	delete(s.handlers, path)
	serving := s.serving
	if len(s.handlers) > 0 || serving == nil {
		s.mu.Unlock()
		return nil
	}
	s.serving = nil
	s.mu.Unlock()
	if err := serving.Shutdown(ctx, s.ShutdownTimeout); err != nil {
		return fmt.Errorf("otlp: shutdown: %w", err)
	}
	return nil
}

func (s *Server) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/ready" {
		io.WriteString(w, "ready\n")
		return
	}
	s.mu.Lock()
	h := s.handlers[req.URL.Path]
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, req)
		return
	}
	h.ServeHTTP(w, req)
}
