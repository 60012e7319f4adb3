package sink

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
)

// Console writes entries or samples to W (default os.Stdout), one per line:
// human-readable text by default, or JSON lines with JSON set. It
// acknowledges a batch once it is written. It is safe for concurrent use.
//
// Text entries read `2006-01-02T15:04:05.000Z07:00 {labels} line`, samples
// `{series} value @timestamp_ms`.
type Console[T ferry.Entry | ferry.Sample] struct {
	W    io.Writer
	JSON bool

	mu     sync.Mutex
	bw     *bufio.Writer
	closed bool
	buf    []byte
}

var errClosed = errors.New("sink closed")

// Send writes b and acknowledges it.
func (c *Console[T]) Send(_ context.Context, b ferry.Batch[T]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		b.Done(errClosed)
		return errClosed
	}
	if c.bw == nil {
		w := c.W
		if w == nil {
			w = os.Stdout
		}
		c.bw = bufio.NewWriter(w)
	}
	for i := range b.Items {
		c.buf = c.buf[:0]
		switch v := any(&b.Items[i]).(type) {
		case *ferry.Entry:
			c.buf = c.appendEntry(c.buf, v)
		case *ferry.Sample:
			c.buf = c.appendSample(c.buf, v)
		}
		c.buf = append(c.buf, '\n')
		c.bw.Write(c.buf)
	}
	err := c.bw.Flush()
	b.Done(err)
	return err
}

func (c *Console[T]) appendEntry(buf []byte, e *ferry.Entry) []byte {
	if c.JSON {
		v := struct {
			Time     time.Time         `json:"time"`
			Labels   map[string]string `json:"labels"`
			Line     string            `json:"line"`
			Metadata map[string]string `json:"metadata,omitempty"`
		}{e.Timestamp, e.Labels.Map(), e.Line, nil}
		if !e.Metadata.IsEmpty() {
			v.Metadata = e.Metadata.Map()
		}
		out, _ := json.Marshal(v)
		return append(buf, out...)
	}
	buf = e.Timestamp.AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
	buf = append(buf, ' ')
	buf = appendLabels(buf, e.Labels)
	buf = append(buf, ' ')
	buf = append(buf, e.Line...)
	if !e.Metadata.IsEmpty() {
		buf = append(buf, ' ')
		buf = appendLabels(buf, e.Metadata)
	}
	return buf
}

// appendLabels appends ls as ls.String() writes it, without making that
// string for every entry.
func appendLabels(buf []byte, ls labels.Labels) []byte {
	buf = append(buf, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			buf = append(buf, ", "...)
		}
		first = false
		if model.LegacyValidation.IsValidLabelName(l.Name) {
			buf = append(buf, l.Name...)
		} else {
			buf = strconv.AppendQuote(buf, l.Name)
		}
		buf = append(buf, '=')
		buf = strconv.AppendQuote(buf, l.Value)
	})
	return append(buf, '}')
}

func (c *Console[T]) appendSample(buf []byte, s *ferry.Sample) []byte {
	if c.JSON {
		v := struct {
			Labels    map[string]string `json:"labels"`
			Timestamp int64             `json:"timestamp_ms"`
			Value     string            `json:"value"`
		}{s.Labels.Map(), s.T, formatFloat(s.V)}
		out, _ := json.Marshal(v)
		return append(buf, out...)
	}
	buf = appendLabels(buf, s.Labels)
	buf = append(buf, ' ')
	buf = append(buf, formatFloat(s.V)...)
	buf = append(buf, " @"...)
	return strconv.AppendInt(buf, s.T, 10)
}

func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Close flushes and stops accepting batches.
func (c *Console[T]) Close(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.bw != nil {
		return c.bw.Flush()
	}
	return nil
}

// Discard is a Sink that acknowledges every batch at once and keeps nothing:
// for benchmarks, and for streams whose only purpose is a side effect.
type Discard[T any] struct{}

// Send acknowledges b.
func (Discard[T]) Send(_ context.Context, b ferry.Batch[T]) error { b.Done(nil); return nil }

// Close does nothing.
func (Discard[T]) Close(context.Context) error { return nil }
