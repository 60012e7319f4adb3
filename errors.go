package ferry

import (
	"errors"
	"fmt"
)

// PermanentError marks an error that retrying cannot cure: a receiver that
// rejected data as invalid, a configuration that cannot work. Components
// return it (wrapped with Permanent) so that callers stop retrying, and sinks
// acknowledge batches they dropped for good with it, so that sources advance
// past them: a permanent drop is counted and final, not a reason to re-read.
type PermanentError struct {
	Err error
}

// Permanent wraps err as a PermanentError. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// Error returns the wrapped error's message after "permanent: ".
func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err, or any error it wraps, is a
// PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// ErrUndelivered says that a pipeline stopped with data it did not
// deliver, which its sources will read again on the next start, since they
// advance positions only past settled data. It is not a failure of any
// component: it is what a stop whose drain deadline passed looks like.
// pipeline.Pipeline.Run returns an error that wraps it (test it with
// errors.Is), and the pipeline acknowledges the batches it gave up at the
// deadline with one; since it is not permanent, ferry.Settled is false for
// them.
var ErrUndelivered = errors.New("stopped with undelivered data that will be read again on the next start")

// Settled reports whether an acknowledgement outcome lets a source move its
// position past the data: the data was delivered (nil) or dropped for good
// (a permanent error). Any other error means the data may be read again.
func Settled(err error) bool { return err == nil || IsPermanent(err) }
