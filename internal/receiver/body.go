package receiver

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/ferrydev/ferry/internal/gunzip"
)

// MaxPooled is the capacity of the largest buffer Buffers keeps.
const MaxPooled = 4 << 20

// Buffers is a pool of byte buffers for request bodies. Its zero value is
// ready to use.
type Buffers struct{ pool sync.Pool }

// Get returns an empty buffer.
func (p *Buffers) Get() *[]byte {
	if bp, ok := p.pool.Get().(*[]byte); ok {
		return bp
	}
	return new([]byte)
}

// Put gives bp back, unless it grew beyond MaxPooled. bp must not be used
// afterwards; nil is ignored.
func (p *Buffers) Put(bp *[]byte) {
	if bp == nil || cap(*bp) > MaxPooled {
		return
	}
	*bp = (*bp)[:0]
	p.pool.Put(bp)
}

// ErrTooLarge is ReadAll's error for input beyond its limit.
var ErrTooLarge = errors.New("too large")

// ReadAll reads rd to its end, appending to buf; with limit >= 0 it fails
// with ErrTooLarge once more than limit bytes were read.
func ReadAll(rd io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if limit >= 0 && int64(len(buf)) > limit {
			return buf, ErrTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// ReadBody reads the body of req, at most limit bytes, appending to buf.
// It fails with a 413 *Error for a larger body and a 400 one when reading
// fails; name starts their messages.
func ReadBody(w http.ResponseWriter, req *http.Request, limit int64, buf []byte, name string) ([]byte, error) {
	body, err := ReadAll(http.MaxBytesReader(w, req.Body, limit), buf, -1)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return body, Errorf(http.StatusRequestEntityTooLarge, "%s: body larger than %d bytes", name, limit)
		}
		return body, Errorf(http.StatusBadRequest, "%s: reading body: %v", name, err)
	}
	return body, nil
}

// ReadDecoded reads zr, the decompressing reader of a body in the given
// encoding, to its end, at most limit bytes, appending to buf. It fails
// with a 413 *Error when the body decompresses to more and a 400 one when
// decompressing fails; name starts their messages.
func ReadDecoded(zr io.Reader, encoding string, limit int64, buf []byte, name string) ([]byte, error) {
	out, err := ReadAll(zr, buf, limit)
	return out, decodeError(err, encoding, limit, name)
}

// Gunzip decompresses body, gzip-compressed, appending to buf, with
// ReadDecoded's errors. limit must be positive.
func Gunzip(body []byte, limit int64, buf []byte, name string) ([]byte, error) {
	out, err := gunzip.Append(buf, body, int(limit))
	if errors.Is(err, gunzip.ErrTooLarge) {
		err = ErrTooLarge
	}
	return out, decodeError(err, "gzip", limit, name)
}

// decodeError is the *Error of decompressing a body in encoding, or nil.
func decodeError(err error, encoding string, limit int64, name string) error {
	switch {
	case errors.Is(err, ErrTooLarge):
		return Errorf(http.StatusRequestEntityTooLarge, "%s: body decompresses to more than %d bytes", name, limit)
	case err != nil:
		return Errorf(http.StatusBadRequest, "%s: %s body: %v", name, encoding, err)
	}
	return nil
}
