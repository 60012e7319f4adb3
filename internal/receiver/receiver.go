// Package receiver is what Ferry's push receivers (source/lokipush,
// source/otlp) share, so that both answer a push for what happened to its
// data in the same way:
//
//   - Outlet hands the items of a request to the running Run of the source
//     as one batch: it waits for room in the pipeline (backpressure on the
//     client) or refuses at once, waits for a first Run after Start, and
//     optionally for the batch's acknowledgement. Run does not return while
//     a request is sending on its channel, so no request sends after Run
//     returned.
//   - Error carries the HTTP status (and whether to send Retry-After) of
//     what went wrong; Status reads it back.
//   - ReadBody and ReadAll read request bodies within size limits into
//     buffers from Buffers.
//   - Serve runs an http.Server on a listener and shuts it down within a
//     deadline.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is an error with the HTTP status to answer it with.
type Error struct {
	Status int
	Msg    string
	// RetryAfter says the answer should carry a Retry-After header: the
	// client may send the same data again later (429, 503).
	RetryAfter bool
}

// Error returns the message sent to the client.
func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error with status and a formatted message.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// retryf returns an *Error with status, a formatted message and
// RetryAfter set.
func retryf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...), RetryAfter: true}
}

// Status returns the status to answer err with and whether to send
// Retry-After: an *Error's own; 0 when err is a context's error (the
// client went away, there is nobody to answer); 400 for any other error.
func Status(err error) (int, bool) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status, e.RetryAfter
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 0, false
	}
	return http.StatusBadRequest, false
}

// WriteError answers err in plain text with the status Status gives it,
// and a Retry-After of retryAfter when it says to; it answers nothing when
// the client went away (status 0).
func WriteError(w http.ResponseWriter, err error, retryAfter time.Duration) {
	status, retry := Status(err)
	if status == 0 {
		return
	}
	if retry {
		SetRetryAfter(w.Header(), retryAfter)
	}
	http.Error(w, err.Error(), status)
}

// SetRetryAfter sets the Retry-After header to d in whole seconds, rounded
// up, and at least 1.
func SetRetryAfter(h http.Header, d time.Duration) {
	secs := max(1, (d+time.Second-1)/time.Second)
	h.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
}
