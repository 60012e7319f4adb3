// Package lokipush receives the Loki push API, as Loki's distributor and
// Alloy's loki.source.api do, and emits the pushed entries into a pipeline.
//
// A Receiver is an http.Handler and a source.Source[ferry.Entry]: mount it
// on any mux (usually at /loki/api/v1/push) and run it in a pipeline. A
// Server does both, listening on an address of its own. Both follow the
// component lifecycle of ferry.Starter: a pipeline calls Start, Run and
// Close; a program that runs them itself must call Start before Run (Run
// returns ErrNotStarted otherwise) and Close at the end.
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
//   - 503: the receiver is not running (before Start, after Run returned),
//     or (WaitForAck) the data was not delivered and may be pushed again.
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
	"log/slog"
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
//
// Its lifecycle is that of every Ferry component (see ferry.Starter): Start
// keeps the Reporter, Run emits on out until ctx is done, Close stops it for
// good. A pipeline makes these calls; a program that runs a Receiver itself
// calls Start before Run, and Run without Start returns an error. Pushes are
// answered 503 before Start and after Run returned; a push that arrives
// after Start but before the first Run waits for it. Run does not return
// while a push is handing its batch to out, and no push sends on out after
// Run returned, so the caller may close out then.
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

	// gate guards the run state. A push holds it for reading while it hands
	// its batch to out; Run takes it for writing before it returns, so it
	// waits for those pushes and no push sends after it.
	gate    sync.RWMutex
	started bool
	ran     bool // a Run attached since Start
	rep     ferry.Reporter
	out     chan<- ferry.Batch[ferry.Entry]
	stop    chan struct{} // closed when the running Run detaches
	changed chan struct{} // closed and replaced when the state changes
	pool    sync.Pool     // *[]byte
}

var (
	_ source.Source[ferry.Entry] = (*Receiver)(nil)
	_ ferry.Starter              = (*Receiver)(nil)
	_ source.Closer              = (*Receiver)(nil)
	_ http.Handler               = (*Receiver)(nil)
)

// ErrNotStarted is returned by Run when Start was not called (or the
// receiver was closed since).
var ErrNotStarted = fmt.Errorf("lokipush: Run before Start: %w", ferry.ErrNotStarted)

// Start makes the receiver ready and keeps r as its Reporter for logs and
// drop counts. It returns an error if the receiver is started already.
func (r *Receiver) Start(_ context.Context, rep ferry.Reporter) error {
	if rep == nil {
		rep = ferry.NopReporter()
	}
	r.gate.Lock()
	defer r.gate.Unlock()
	if r.started {
		return errors.New("lokipush: receiver started twice")
	}
	r.started, r.ran, r.rep = true, false, rep
	r.notifyLocked()
	return nil
}

// Run makes the receiver emit on out until ctx is done. When it returns, no
// push is sending on out and none will. A Receiver runs once at a time; Run
// returns ErrNotStarted without Start, and an error if it is already
// running.
func (r *Receiver) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := r.attach(out); err != nil {
		return err
	}
	<-ctx.Done()
	r.detach()
	return nil
}

// Close stops the receiver: later pushes get 503, and Run needs a new Start.
// It is safe without Start and safe twice.
func (r *Receiver) Close(context.Context) error {
	r.gate.Lock()
	defer r.gate.Unlock()
	r.started = false
	r.notifyLocked()
	return nil
}

// attach makes pushes emit on out; detach makes them get 503 again, after
// waiting for the pushes that are handing a batch to out.
func (r *Receiver) attach(out chan<- ferry.Batch[ferry.Entry]) error {
	r.gate.Lock()
	defer r.gate.Unlock()
	switch {
	case !r.started:
		return ErrNotStarted
	case r.out != nil:
		return errors.New("lokipush: receiver already running")
	}
	r.out, r.stop, r.ran = out, make(chan struct{}), true
	r.notifyLocked()
	r.rep.SetHealth(ferry.Healthy, nil)
	return nil
}

func (r *Receiver) detach() {
	// Wake the pushes blocked on a full out first: they hold the gate.
	close(r.stop)
	r.gate.Lock()
	defer r.gate.Unlock()
	r.out, r.stop = nil, nil
	r.notifyLocked()
}

func (r *Receiver) notifyLocked() {
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
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

// reporter returns the Reporter given to Start, or one that only logs.
func (r *Receiver) reporter() ferry.Reporter {
	r.gate.RLock()
	defer r.gate.RUnlock()
	if r.rep == nil {
		return ferry.NopReporter()
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
	var acked chan error
	b := ferry.Batch[ferry.Entry]{Items: entries}
	if r.WaitForAck {
		acked = make(chan error, 1)
		b = ferry.NewBatch(entries, func(err error) { acked <- err })
	}
	if !r.emit(w, req, b) {
		return
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

// emit hands b to the running Run's out, holding the gate for reading so
// that Run cannot return meanwhile. It reports whether b was handed on;
// otherwise it has answered the push and settled b.
func (r *Receiver) emit(w http.ResponseWriter, req *http.Request, b ferry.Batch[ferry.Entry]) bool {
	for {
		r.gate.RLock()
		if r.out != nil {
			ok := r.sendLocked(w, req, b)
			r.gate.RUnlock()
			return ok
		}
		// Started but not yet run: wait for the first Run, as a push to a
		// full pipeline waits, unless told not to wait.
		if r.started && !r.ran && !r.RejectWhenFull {
			changed := r.changed
			r.gate.RUnlock()
			select {
			case <-changed:
				continue
			case <-req.Context().Done():
				b.Done(req.Context().Err())
				return false
			}
		}
		r.gate.RUnlock()
		b.Done(errors.New("lokipush: receiver not running"))
		http.Error(w, "lokipush: receiver not running", http.StatusServiceUnavailable)
		return false
	}
}

// sendLocked sends b on out; the gate is held for reading.
func (r *Receiver) sendLocked(w http.ResponseWriter, req *http.Request, b ferry.Batch[ferry.Entry]) bool {
	if r.RejectWhenFull {
		select {
		case r.out <- b:
			return true
		default:
			b.Done(errors.New("lokipush: pipeline full"))
			r.rep.Dropped("pipeline_full", len(b.Items))
			w.Header().Set("Retry-After", "1")
			http.Error(w, "lokipush: pipeline full, retry later", http.StatusTooManyRequests)
			return false
		}
	}
	select {
	case r.out <- b:
		return true
	case <-req.Context().Done():
		b.Done(req.Context().Err())
		return false
	case <-r.stop:
		b.Done(errors.New("lokipush: receiver stopped"))
		http.Error(w, "lokipush: receiver stopped", http.StatusServiceUnavailable)
		return false
	}
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
// answering 200 while it serves.
//
// Start listens and serves, so that an address already in use fails the
// start (and a pipeline's Run) at once; Run emits what is pushed until its
// context is done; Close stops serving, waiting up to ShutdownTimeout for
// pushes in progress. A pipeline makes these calls; a program that runs a
// Server itself calls Start first, and Close when done.
type Server struct {
	Receiver
	// Addr to listen on, such as "127.0.0.1:3500". Ignored if Listener is
	// set.
	Addr string
	// Listener, when set, is served instead of listening on Addr. Close
	// closes it.
	Listener net.Listener
	// ShutdownTimeout bounds how long Close waits for pushes in progress
	// (default 5s, and never beyond the deadline of Close's context).
	ShutdownTimeout time.Duration

	mu       sync.Mutex
	srv      *http.Server
	serveErr chan error // receives Serve's error once, then is closed
	served   error      // Serve's error, once received
}

var (
	_ source.Source[ferry.Entry] = (*Server)(nil)
	_ ferry.Starter              = (*Server)(nil)
	_ source.Closer              = (*Server)(nil)
)

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

// Start listens on Addr (unless Listener is set) and starts serving. Pushes
// that arrive before Run wait for it. It returns the listen error, such as
// an address in use, and an error if the server is started already.
func (s *Server) Start(ctx context.Context, rep ferry.Reporter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("lokipush: server started twice")
	}
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return fmt.Errorf("lokipush: %w", err)
		}
	}
	if err := s.Receiver.Start(ctx, rep); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/loki/api/v1/push", &s.Receiver)
	mux.Handle("/api/v1/push", &s.Receiver)
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.Receiver.reporter().Logger().Handler(), slog.LevelWarn)}
	s.serveErr, s.served = make(chan error, 1), nil
	go func(srv *http.Server, errc chan error) {
		errc <- srv.Serve(ln)
		close(errc)
	}(s.srv, s.serveErr)
	return nil
}

// Run emits the entries of pushes on out until ctx is done, and returns nil
// then; the server goes on answering (503, or the outcome of pushes waiting
// for their acknowledgement) until Close. It returns ErrNotStarted without
// Start, nil if Close stopped the server, and a permanent error if serving
// failed otherwise.
func (s *Server) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	s.mu.Lock()
	errc := s.serveErr
	s.mu.Unlock()
	if errc == nil {
		return ErrNotStarted
	}
	if err := s.Receiver.attach(out); err != nil {
		return err
	}
	defer s.Receiver.detach()
	select {
	case <-ctx.Done():
		return nil
	case err, ok := <-errc:
		s.mu.Lock()
		if ok {
			s.served = err
		}
		err = s.served
		s.mu.Unlock()
		if errors.Is(err, http.ErrServerClosed) {
			return nil // Close was called
		}
		return ferry.Permanent(fmt.Errorf("lokipush: serving stopped: %w", err))
	}
}

// Close stops serving: it closes the listener, waits for pushes in progress
// up to ShutdownTimeout or ctx's deadline, and then closes what is left. It
// is safe without Start and safe twice.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return s.Receiver.Close(ctx)
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Answer pushes waiting for a first Run now, rather than at the
	// deadline.
	s.Receiver.Close(ctx)
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
		return fmt.Errorf("lokipush: shutdown: %w", err)
	}
	return nil
}
