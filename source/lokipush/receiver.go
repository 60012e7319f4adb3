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
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/internal/receiver"
	"github.com/ferrydev/ferry/source"
	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
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

	life   lifecycle.State
	outlet receiver.Outlet[ferry.Entry]
	bufs   receiver.Buffers
}

var (
	_ source.Source[ferry.Entry] = (*Receiver)(nil)
	_ ferry.Starter              = (*Receiver)(nil)
	_ source.Closer              = (*Receiver)(nil)
	_ http.Handler               = (*Receiver)(nil)
)

// ErrNotStarted is returned by Run before Start, and ErrClosed by Start
// and Run after Close.
var (
	ErrNotStarted = fmt.Errorf("lokipush: Run before Start: %w", ferry.ErrNotStarted)
	ErrClosed     = fmt.Errorf("lokipush: receiver %w", ferry.ErrClosed)
)

// Start makes the receiver ready and keeps r as its Reporter for logs and
// drop counts. Start is a no-op on a started receiver and returns ErrClosed
// after Close.
func (r *Receiver) Start(_ context.Context, rep ferry.Reporter) error {
	return r.life.Start(ErrClosed, func() error {
		r.outlet.Open("lokipush", rep)
		return nil
	})
}

// Run makes the receiver emit on out until ctx is done. When it returns, no
// push is sending on out and none will. A Receiver runs once at a time; Run
// returns ErrNotStarted before Start, ErrClosed after Close, and an error
// if it is already running.
func (r *Receiver) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := r.life.Err(ErrNotStarted, ErrClosed); err != nil {
		return err
	}
	return r.outlet.Run(ctx, out)
}

// Close stops the receiver: later pushes get 503. It is safe without Start
// and safe twice.
func (r *Receiver) Close(context.Context) error {
	return r.life.Close(func(bool) error {
		r.outlet.Close()
		return nil
	})
}

// Validate reports configuration errors: invalid names in Labels or
// TenantLabel.
func (r *Receiver) Validate() error {
	var errs []error
	r.Labels.Range(func(l labels.Label) {
		if !model.LegacyValidation.IsValidLabelName(l.Name) {
			errs = append(errs, fmt.Errorf("lokipush: label name %q is invalid", l.Name))
		}
	})
	if r.TenantLabel != "" && !model.LegacyValidation.IsValidLabelName(r.TenantLabel) {
		errs = append(errs, fmt.Errorf("lokipush: TenantLabel %q is invalid", r.TenantLabel))
	}
	return errors.Join(errs...)
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
		r.outlet.Reporter().Logger().Debug("lokipush: push rejected", "remote", req.RemoteAddr, "err", err)
	} else if len(entries) > 0 {
		fullWait := receiver.Forever
		if r.RejectWhenFull {
			fullWait = 0
		}
		err = r.outlet.Push(req.Context(), entries, receiver.PushOptions{FullWait: fullWait, WaitForAck: r.WaitForAck})
		if ferry.IsPermanent(err) {
			err = receiver.Errorf(http.StatusBadRequest, "lokipush: entries dropped downstream: %v", err)
		}
	}
	if err != nil {
		receiver.WriteError(w, err, time.Second)
		return
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
	bp := r.bufs.Get()
	defer r.bufs.Put(bp)
	body, err := receiver.ReadBody(w, req, maxBody, (*bp)[:0], "lokipush")
	*bp = body
	if err != nil {
		return nil, err
	}

	var zr io.ReadCloser
	switch ce := req.Header.Get("Content-Encoding"); ce {
	case "", "snappy", "identity":
	case "gzip":
		if body, err = receiver.Gunzip(body, maxDecoded, nil, "lokipush"); err != nil {
			return nil, err
		}
	case "deflate":
		zr, err = zlib.NewReader(bytes.NewReader(body))
	default:
		return nil, receiver.Errorf(http.StatusUnsupportedMediaType, "lokipush: unsupported Content-Encoding %q (want gzip, deflate, snappy or none)", ce)
	}
	if err != nil {
		return nil, receiver.Errorf(http.StatusBadRequest, "lokipush: %s body: %v", req.Header.Get("Content-Encoding"), err)
	}
	if zr != nil {
		body, err = receiver.ReadDecoded(zr, req.Header.Get("Content-Encoding"), maxDecoded, nil, "lokipush")
		zr.Close()
		if err != nil {
			return nil, err
		}
	}

	d := decoder{streamLabels: r.streamLabels(req.Header.Get("X-Scope-OrgID"))}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	var entries []ferry.Entry
	if mt == "application/json" {
		entries, err = d.decodeJSON(body, nil)
	} else {
		n, derr := snappy.DecodedLen(body)
		if derr != nil {
			return nil, receiver.Errorf(http.StatusBadRequest, "lokipush: protobuf body is not snappy block format: %v", derr)
		}
		if int64(n) > maxDecoded {
			return nil, receiver.Errorf(http.StatusRequestEntityTooLarge, "lokipush: body decompresses to %d bytes, more than %d", n, maxDecoded)
		}
		raw, derr := snappy.Decode(nil, body)
		if derr != nil {
			return nil, receiver.Errorf(http.StatusBadRequest, "lokipush: protobuf body is not snappy block format: %v", derr)
		}
		entries, err = d.decodeProto(raw, nil)
	}
	if err != nil {
		return nil, receiver.Errorf(http.StatusBadRequest, "lokipush: malformed push: %v", err)
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

	serving *receiver.Serving // from Start
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
// an address in use. Start is a no-op on a started server and returns
// ErrClosed after Close.
func (s *Server) Start(_ context.Context, rep ferry.Reporter) error {
	if rep == nil {
		rep = ferry.NopReporter()
	}
	return s.life.Start(ErrClosed, func() error {
		mux := http.NewServeMux()
		mux.Handle("/loki/api/v1/push", &s.Receiver)
		mux.Handle("/api/v1/push", &s.Receiver)
		mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
		serving, err := receiver.Serve(s.Addr, s.Listener, mux, rep.Logger())
		if err != nil {
			return fmt.Errorf("lokipush: %w", err)
		}
		s.serving = serving
		s.outlet.Open("lokipush", rep)
		return nil
	})
}

// Run emits the entries of pushes on out until ctx is done, and returns nil
// then; the server goes on answering (503, or the outcome of pushes waiting
// for their acknowledgement) until Close. It returns ErrNotStarted before
// Start, ErrClosed after Close, and a permanent error if serving failed.
func (s *Server) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := s.life.Err(ErrNotStarted, ErrClosed); err != nil {
		return err
	}
	if err := s.outlet.Attach(out); err != nil {
		return err
	}
	defer s.outlet.Detach()
	select {
	case <-ctx.Done():
		return nil
	case <-s.serving.Done():
		if err := s.serving.Err(); !errors.Is(err, http.ErrServerClosed) {
			return ferry.Permanent(fmt.Errorf("lokipush: serving stopped: %w", err))
		}
		return nil // Close was called
	}
}

// Close stops serving: it answers pushes waiting for a first Run with 503,
// closes the listener, waits for pushes in progress up to ShutdownTimeout
// or ctx's deadline, and then closes what is left. It is safe without
// Start and safe twice.
func (s *Server) Close(ctx context.Context) error {
	return s.life.Close(func(started bool) error {
		s.outlet.Close()
		if !started {
			return nil
		}
		if err := s.serving.Shutdown(ctx, s.ShutdownTimeout); err != nil {
			return fmt.Errorf("lokipush: shutdown: %w", err)
		}
		return nil
	})
}
