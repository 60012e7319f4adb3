// Package lokipush receives the Loki push API, as Loki's distributor and
// Alloy's loki.source.api do, and emits the pushed entries into a pipeline.
//
// A Receiver is an http.Handler and a source.Source[ferry.Entry]: mount it
// on any mux (usually at /loki/api/v1/push) and run it in a pipeline. A
// Server does both, listening on an address of its own.
//
// Bodies may be snappy-compressed protobuf (Content-Type
// application/x-protobuf or anything but JSON), or JSON (application/json),
// either optionally wrapped in Content-Encoding gzip or deflate. The protobuf
// decoder is written on google.golang.org/protobuf/encoding/protowire and
// fuzzed; it makes one copy of the decompressed body and slices every line
// and metadata string from it.
//
// # Responses
//
//   - 204: the batch was handed to the pipeline (or, with WaitForAck,
//     delivered downstream).
//   - 400: the body is malformed; the message names the stream, entry and
//     problem.
//   - 405, 413, 415: wrong method, body over MaxBodySize (or decompressing
//     to more than MaxDecodedSize), unsupported Content-Encoding.
//   - 429: the pipeline is full and RejectWhenFull is set (the entries
//     are counted as dropped with reason "pipeline_full"; the pusher
//     retries them).
//   - 503: the receiver is not running, or (WaitForAck) the data was not
//     delivered and may be pushed again.
//
// By default a push is answered once its batch is in the pipeline's
// channel, as Alloy does; the pusher's retries do not cover later losses.
// With WaitForAck the answer waits for the batch's acknowledgement, so that
// a push is only confirmed when delivered (at-least-once end to end, at the
// cost of holding the request open for the sinks' batching delay).
package lokipush

import (
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
)

// Defaults of the Receiver fields left at zero.
const (
	DefaultMaxBodySize    = 10 << 20
	DefaultMaxDecodedSize = 64 << 20
	DefaultTenantLabel    = "__tenant_id__"
)

// Receiver accepts pushes over HTTP and emits their entries. Its zero value
// is ready to use; fields must not change once it serves.
type Receiver struct {
	// MaxBodySize is the largest request body accepted, as sent (default
	// 10 MiB); larger ones get 413.
	MaxBodySize int64
	// MaxDecodedSize is the largest body accepted after decompression
	// (default 64 MiB).
	MaxDecodedSize int64
	// RejectWhenFull answers 429 at once when the pipeline does not take the
	// batch; by default the push waits (backpressure on the pusher).
	RejectWhenFull bool
	// WaitForAck answers only after the batch was acknowledged downstream.
	WaitForAck bool
	// Labels are added to every entry's stream labels, replacing pushed
	// labels of the same name.
	Labels labels.Labels
	// TenantLabel is the label that receives the X-Scope-OrgID header of a
	// push, when there is one (default "__tenant_id__", which the Loki sink
	// uses to route per tenant).
	TenantLabel string
	// UseReceiveTime replaces pushed timestamps by the time of receipt.
	UseReceiveTime bool

	mu      sync.Mutex
	out     chan<- ferry.Batch[ferry.Entry]
	runDone <-chan struct{}
	rep     ferry.Reporter
	pool    sync.Pool // *[]byte
}

var _ source.Source[ferry.Entry] = (*Receiver)(nil)
var _ http.Handler = (*Receiver)(nil)

// Run makes the receiver emit on out until ctx is done; while it is not
// running, pushes get 503. A Receiver runs once at a time; Run returns an
// error if it is already running.
func (r *Receiver) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := r.start(ctx, out); err != nil {
		return err
	}
	<-ctx.Done()
	r.stop()
	return nil
}

// start makes pushes emit on out; stop makes them get 503 again.
func (r *Receiver) start(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	r.mu.Lock()
	if r.out != nil {
		r.mu.Unlock()
		return errors.New("lokipush: receiver already running")
	}
	r.out, r.runDone, r.rep = out, ctx.Done(), ferry.ReporterFrom(ctx)
	r.mu.Unlock()
	r.rep.SetHealth(ferry.Healthy, nil)
	return nil
}

func (r *Receiver) stop() {
	r.mu.Lock()
	r.out, r.runDone, r.rep = nil, nil, nil
	r.mu.Unlock()
}

// httpError is an error with the status to answer.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// Validate reports configuration errors: invalid names in Labels or
// TenantLabel.
func (r *Receiver) Validate() error {
	var errs []error
	r.Labels.Range(func(l labels.Label) {
		if !validName(l.Name) {
			errs = append(errs, fmt.Errorf("lokipush: label name %q is invalid", l.Name))
		}
	})
	if r.TenantLabel != "" && !validName(r.TenantLabel) {
		errs = append(errs, fmt.Errorf("lokipush: TenantLabel %q is invalid", r.TenantLabel))
	}
	return errors.Join(errs...)
}

// reporter returns the Reporter of the running Run, or the default one.
func (r *Receiver) reporter() ferry.Reporter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rep == nil {
		return ferry.ReporterFrom(context.Background())
	}
	return r.rep
}

// ServeHTTP handles one push.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "lokipush: only POST is accepted", http.StatusMethodNotAllowed)
		return
	}
	entries, err := r.decodeRequest(w, req)
	if err != nil {
		status := http.StatusBadRequest
		var he *httpError
		if errors.As(err, &he) {
			status = he.status
		}
		r.reporter().Logger().Debug("lokipush: push rejected", "status", status, "remote", req.RemoteAddr, "err", err)
		http.Error(w, err.Error(), status)
		return
	}
	if len(entries) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	r.mu.Lock()
	out, runDone := r.out, r.runDone
	r.mu.Unlock()
	if out == nil {
		http.Error(w, "lokipush: receiver not running", http.StatusServiceUnavailable)
		return
	}
	var acked chan error
	b := ferry.Batch[ferry.Entry]{Items: entries}
	if r.WaitForAck {
		acked = make(chan error, 1)
		b = ferry.NewBatch(entries, func(err error) { acked <- err })
	}
	if r.RejectWhenFull {
		select {
		case out <- b:
		default:
			b.Done(errors.New("lokipush: pipeline full"))
			r.reporter().Dropped("pipeline_full", len(entries))
			w.Header().Set("Retry-After", "1")
			http.Error(w, "lokipush: pipeline full, retry later", http.StatusTooManyRequests)
			return
		}
	} else {
		select {
		case out <- b:
		case <-req.Context().Done():
			b.Done(req.Context().Err())
			return
		case <-runDone:
			b.Done(errors.New("lokipush: receiver stopped"))
			http.Error(w, "lokipush: receiver stopped", http.StatusServiceUnavailable)
			return
		}
	}
	if acked != nil {
		select {
		case err := <-acked:
			switch {
			case err == nil:
			case ferry.IsPermanent(err):
				http.Error(w, "lokipush: entries dropped downstream: "+err.Error(), http.StatusBadRequest)
				return
			default:
				http.Error(w, "lokipush: not delivered, push again: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		case <-req.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeRequest reads, decompresses and decodes the body of req.
func (r *Receiver) decodeRequest(w http.ResponseWriter, req *http.Request) ([]ferry.Entry, error) {
	maxBody := r.MaxBodySize
	if maxBody <= 0 {
		maxBody = DefaultMaxBodySize
	}
	maxDecoded := r.MaxDecodedSize
	if maxDecoded <= 0 {
		maxDecoded = DefaultMaxDecodedSize
	}
	bp, _ := r.pool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer r.pool.Put(bp)
	body, err := readAll(http.MaxBytesReader(w, req.Body, maxBody), (*bp)[:0])
	*bp = body
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fail(http.StatusRequestEntityTooLarge, "lokipush: body larger than %d bytes", maxBody)
		}
		return nil, fail(http.StatusBadRequest, "lokipush: reading body: %v", err)
	}

	var zr io.ReadCloser
	switch ce := req.Header.Get("Content-Encoding"); ce {
	case "", "snappy", "identity":
	case "gzip":
		zr, err = gzip.NewReader(newBytesReader(body))
	case "deflate":
		zr, err = zlib.NewReader(newBytesReader(body))
	default:
		return nil, fail(http.StatusUnsupportedMediaType, "lokipush: unsupported Content-Encoding %q (want gzip, deflate, snappy or none)", ce)
	}
	if err != nil {
		return nil, fail(http.StatusBadRequest, "lokipush: %s body: %v", req.Header.Get("Content-Encoding"), err)
	}
	if zr != nil {
		decoded, err := readAll(io.LimitReader(zr, maxDecoded+1), nil)
		zr.Close()
		if err != nil {
			return nil, fail(http.StatusBadRequest, "lokipush: %s body: %v", req.Header.Get("Content-Encoding"), err)
		}
		if int64(len(decoded)) > maxDecoded {
			return nil, fail(http.StatusRequestEntityTooLarge, "lokipush: body decompresses to more than %d bytes", maxDecoded)
		}
		body = decoded
	}

	d := decoder{streamLabels: r.streamLabels(req.Header.Get("X-Scope-OrgID"))}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	var entries []ferry.Entry
	if mt == "application/json" {
		entries, err = d.decodeJSON(body, nil)
	} else {
		n, derr := snappy.DecodedLen(body)
		if derr != nil {
			return nil, fail(http.StatusBadRequest, "lokipush: protobuf body is not snappy block format: %v", derr)
		}
		if int64(n) > maxDecoded {
			return nil, fail(http.StatusRequestEntityTooLarge, "lokipush: body decompresses to %d bytes, more than %d", n, maxDecoded)
		}
		raw, derr := snappy.Decode(nil, body)
		if derr != nil {
			return nil, fail(http.StatusBadRequest, "lokipush: protobuf body is not snappy block format: %v", derr)
		}
		entries, err = d.decodeProto(raw, nil)
	}
	if err != nil {
		return nil, fail(http.StatusBadRequest, "lokipush: malformed push: %v", err)
	}
	if r.UseReceiveTime {
		now := time.Now()
		for i := range entries {
			entries[i].Timestamp = now
		}
	}
	return entries, nil
}

// streamLabels returns the function that completes a pushed stream's labels
// with the receiver's labels and the tenant, or nil if there is nothing to
// add.
func (r *Receiver) streamLabels(tenant string) func(labels.Labels) labels.Labels {
	if r.Labels.IsEmpty() && tenant == "" {
		return nil
	}
	tl := r.TenantLabel
	if tl == "" {
		tl = DefaultTenantLabel
	}
	b := labels.NewBuilder(labels.EmptyLabels())
	return func(ls labels.Labels) labels.Labels {
		b.Reset(ls)
		r.Labels.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
		if tenant != "" {
			b.Set(tl, tenant)
		}
		return b.Labels()
	}
}

type bytesReader struct {
	b []byte
}

func newBytesReader(b []byte) *bytesReader { return &bytesReader{b: b} }

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *bytesReader) ReadByte() (byte, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// readAll reads rd to its end, appending to buf.
func readAll(rd io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// Server listens on Addr (or Listener) and serves a Receiver at
// /loki/api/v1/push (and /api/v1/push, Loki's legacy path), with /ready
// answering 200 while it runs.
type Server struct {
	Receiver
	// Addr to listen on, such as "127.0.0.1:3500". Ignored if Listener is
	// set.
	Addr string
	// Listener, when set, is served instead of listening on Addr. Run
	// closes it.
	Listener net.Listener
	// ShutdownTimeout bounds how long Run waits for pushes in progress when
	// ctx ends (default 5s).
	ShutdownTimeout time.Duration
}

// Validate reports configuration errors: neither Addr nor Listener set, or
// an invalid receiver configuration. A pipeline's Build calls it.
func (s *Server) Validate() error {
	var errs []error
	if s.Addr == "" && s.Listener == nil {
		errs = append(errs, errors.New("lokipush: Server needs Addr or Listener"))
	}
	if err := s.Receiver.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run listens, serves pushes and emits their entries on out until ctx is
// done; then it stops accepting and waits for pushes in progress, up to
// ShutdownTimeout. It returns an error if it cannot listen or serve.
func (s *Server) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return fmt.Errorf("lokipush: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/loki/api/v1/push", &s.Receiver)
	mux.Handle("/api/v1/push", &s.Receiver)
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The receiver runs before the first request is served: a push that
	// arrives as soon as the listener exists must not get 503.
	if err := s.Receiver.start(rctx, out); err != nil {
		ln.Close()
		return err
	}
	stopped := make(chan struct{})
	go func() {
		<-rctx.Done()
		s.Receiver.stop()
		close(stopped)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		cancel()
		<-stopped
		return fmt.Errorf("lokipush: %w", err)
	case <-ctx.Done():
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	sctx, scancel := context.WithTimeout(context.Background(), timeout)
	defer scancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	<-serveErr
	<-stopped
	if err != nil {
		return fmt.Errorf("lokipush: shutdown: %w", err)
	}
	return nil
}
