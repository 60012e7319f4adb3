package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/arena"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/prometheus/prometheus/model/labels"
)

// Defaults for Reader.
const (
	DefaultBatchSize   = 512
	DefaultLinger      = 100 * time.Millisecond
	DefaultMaxLineSize = 256 << 10
)

// Reader is a Source of log entries read line by line from an io.Reader,
// such as os.Stdin. Each line becomes an entry with the Labels of the reader
// and the time it was read. The zero value reads nothing; set R.
//
// Lines longer than MaxLineSize are cut to it (and counted as
// "line_truncated") unless LongLines is DropLongLines, in which case they
// are dropped and counted as "line_too_long". A trailing "\r" is removed. Reader has no
// positions: it cannot re-read, so unacknowledged lines are lost if the
// program stops, as with any pipe.
type Reader struct {
	R           io.Reader
	Labels      labels.Labels
	BatchSize   int            // entries per batch, default DefaultBatchSize
	Linger      time.Duration  // longest wait to fill a batch, default DefaultLinger
	MaxLineSize int            // default DefaultMaxLineSize
	LongLines   LongLinePolicy // TruncateLongLines (default) or DropLongLines

	life lifecycle.State
	rep  ferry.Reporter // from Start
}

// errReaderNotStarted is returned by Reader.Run before Start.
var errReaderNotStarted = fmt.Errorf("source.Reader: Run before Start: %w", ferry.ErrNotStarted)

// Start keeps r, through which Run counts the lines it cuts or drops. A
// pipeline calls it; a program that runs the Reader itself calls it first
// (with ferry.NopReporter() if it counts nothing).
func (r *Reader) Start(_ context.Context, rep ferry.Reporter) error {
	if rep == nil {
		rep = ferry.NopReporter()
	}
	return r.life.Start(nil, func() error {
		r.rep = rep
		return nil
	})
}

// Run reads until EOF (returning nil after emitting what it read) or an
// error, or until ctx is done.
func (r *Reader) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := r.life.Err(errReaderNotStarted, nil); err != nil {
		return err
	}
	rep := r.rep
	if r.R == nil {
		return nil
	}
	size, linger, maxLine := r.BatchSize, r.Linger, r.MaxLineSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	if linger <= 0 {
		linger = DefaultLinger
	}
	if maxLine <= 0 {
		maxLine = DefaultMaxLineSize
	}
	// Reading blocks without regard to ctx, so it runs on its own goroutine
	// and hands over the lines of each read at once, when the next read
	// would wait (or a batch's worth is ready); batching happens here.
	// chunks is closed at the end of the input, after readErr is set.
	type chunk struct {
		lines []string
		at    time.Time // when they were read
	}
	chunks := make(chan chunk, 4)
	stop := make(chan struct{})
	defer close(stop)
	var readErr error
	go func() {
		defer close(chunks)
		br := bufio.NewReaderSize(r.R, 64<<10)
		var text arena.Arena // the strings of the lines of a chunk
		var lines []string
		send := func() bool {
			if len(lines) == 0 {
				return true
			}
			c := chunk{lines: lines, at: time.Now()}
			lines = make([]string, 0, len(lines))
			text.Release()
			select {
			case chunks <- c:
				return true
			case <-stop:
				return false
			}
		}
		var long []byte // a line longer than the buffer, collected up to maxLine+1 bytes
		partial := false
		for {
			frag, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				if len(long) <= maxLine {
					long = append(long, frag[:min(len(frag), maxLine+1-len(long))]...)
				}
				partial = true
				continue
			}
			if err != nil && err != io.EOF {
				if send() {
					readErr = err
				}
				return
			}
			line := frag
			if partial {
				if len(long) <= maxLine {
					long = append(long, frag[:min(len(frag), maxLine+1-len(long))]...)
				}
				line, long, partial = long, long[:0], false
			}
			if len(line) == 0 && err == io.EOF {
				send()
				return
			}
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(line) > maxLine {
				if r.LongLines == DropLongLines {
					rep.Dropped("line_too_long", 1)
					continue
				}
				rep.Dropped("line_truncated", 1)
				line = line[:maxLine]
			}
			lines = append(lines, text.String(line))
			if err == io.EOF {
				send()
				return
			}
			if br.Buffered() == 0 || len(lines) >= size {
				if !send() {
					return
				}
			}
		}
	}()

	batch := make([]ferry.Entry, 0, size)
	timer := time.NewTimer(linger)
	defer timer.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b := ferry.Batch[ferry.Entry]{Items: batch}
		batch = make([]ferry.Entry, 0, size)
		return Send(ctx, out, b)
	}
	for {
		select {
		case c, ok := <-chunks:
			if !ok {
				if err := flush(); err != nil {
					return nil
				}
				return readErr
			}
			for _, line := range c.lines {
				batch = append(batch, ferry.Entry{Labels: r.Labels, Timestamp: c.at, Line: line})
				if len(batch) >= size {
					if err := flush(); err != nil {
						return nil
					}
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return nil
			}
			timer.Reset(linger)
		case <-ctx.Done():
			flush()
			return nil
		}
	}
}
