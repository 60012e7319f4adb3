package buffer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/sink"
)

// Policy says what Send does when the buffer holds MaxBytes.
type Policy int

const (
	// Block makes Send wait until the inner sink frees space, or its
	// context ends: backpressure, as without a buffer, only later.
	Block Policy = iota
	// DropOldest deletes the oldest segment file to make room, counting its
	// items not yet acknowledged as dropped with reason ReasonDropOldest
	// (those the inner sink holds at that moment may still be delivered).
	DropOldest
)

// String returns "block" or "drop_oldest".
func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case DropOldest:
		return "drop_oldest"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Defaults and limits of Options.
const (
	DefaultSegmentBytes     = 16 << 20
	MinSegmentBytes         = 4 << 10
	DefaultSyncInterval     = time.Second
	DefaultMaxInFlight      = 1024
	DefaultMaxInFlightBytes = 4 << 20
	DefaultMinBackoff       = 250 * time.Millisecond
	DefaultMaxBackoff       = 30 * time.Second
	// maxRecordTarget bounds the payload of one record: a batch larger
	// than this is written as several records.
	maxRecordTarget = 1 << 20
	// writeBuffer is the size of the write buffer; records of directWrite
	// bytes or more skip it.
	writeBuffer = 256 << 10
	directWrite = 32 << 10
	// writeBackBytes is how much reaches the active segment before its
	// write-out is started, ahead of the fsync.
	writeBackBytes = 1 << 20
)

// Reasons under which the buffer counts dropped items.
const (
	// ReasonDropOldest: deleted by the DropOldest policy to make room.
	ReasonDropOldest = "buffer_full"
	// ReasonTooLarge: one item whose encoding does not fit in a segment.
	ReasonTooLarge = "too_large"
)

// ErrClosed acknowledges batches sent after Close. It wraps
// ferry.ErrClosed.
var ErrClosed = fmt.Errorf("buffer: %w", ferry.ErrClosed)

// ErrNotStarted acknowledges batches sent before Start.
var ErrNotStarted = fmt.Errorf("buffer: not started: %w", ferry.ErrNotStarted)

// Options configure a Disk. The zero value of every field but MaxBytes
// means its default.
type Options struct {
	// Name identifies the buffer in metrics (the "buffer" label) and logs.
	// Default: the base name of the directory.
	Name string
	// MaxBytes bounds the segment files on disk. Required; at least
	// SegmentBytes.
	MaxBytes int64
	// SegmentBytes is the size at which a segment file is closed and the
	// next one started (default MaxBytes/8, at most 16 MiB; at least
	// MinSegmentBytes). Space
	// is freed a whole segment at a time, once everything in it was
	// acknowledged by the inner sink.
	SegmentBytes int64
	// SyncInterval is how often written records are made durable with one
	// fsync for everything written since the last (group commit). A batch
	// is acknowledged upstream only after that fsync, so a source waits up
	// to SyncInterval for its acknowledgement, and a shorter interval
	// costs more fsyncs. Default 1s. A negative value fsyncs in every
	// Send before it returns (concurrent Sends share one fsync).
	SyncInterval time.Duration
	// Policy is what Send does when MaxBytes is reached (default Block).
	Policy Policy
	// MaxInFlight and MaxInFlightBytes bound the records replayed to the
	// inner sink and not yet acknowledged by it, in records (default 1024)
	// and in encoded bytes (default 4 MiB, exceeded by at most one record
	// of at most 1 MiB). They bound the memory of replay, and should leave
	// room for the inner sink to fill its requests: a Loki sink sends a
	// request when it holds BatchSize bytes or waited BatchWait.
	MaxInFlight      int
	MaxInFlightBytes int64
	// MinBackoff and MaxBackoff bound the wait before records the inner
	// sink failed with a retryable error are sent again (250ms, 30s). They
	// are retried without limit: only a delivery or a ferry.Permanent
	// error frees them.
	MinBackoff, MaxBackoff time.Duration
}

// Disk is a sink.Sink that makes batches durable in segment files in Dir
// before acknowledging them, and replays them from there to Inner. See
// the package documentation for the design.
//
// Set Dir, Inner, Codec and Options.MaxBytes, then call Start (a pipeline
// does). New and Wrap fill in the fields.
type Disk[T any] struct {
	// Dir holds the segment files and the read marker. It is created if
	// missing. One directory belongs to one Disk at a time.
	Dir string
	// Inner is the sink records are replayed to.
	Inner sink.Sink[T]
	// Codec encodes items for the disk.
	Codec Codec[T]
	Options

	life    lifecycle.State
	lock    *os.File
	rep     ferry.Reporter
	log     *slog.Logger
	irep    *innerReporter
	closing chan struct{} // closed by Close: Sends stop waiting
	stopRd  chan struct{} // closed by Close after the inner sink closed
	rdDone  chan struct{}
	syDone  chan struct{}
	cancel  context.CancelFunc // of the replay's sends

	// syncMu serialises sync (and the end of Close): the fsyncs run
	// outside wmu, so that Sends go on writing meanwhile.
	syncMu sync.Mutex

	// write path, guarded by wmu
	wmu        sync.Mutex
	active     *os.File
	activeID   uint64
	activeSize int64
	bw         *bufio.Writer
	out        io.Writer // the active file, under bw: large records skip bw's copy
	unsynced   []segFile // sealed segments the next sync fsyncs and closes
	dirDirty   bool      // a segment was created since the last sync
	pending    []*ferry.Ack
	spare      []*ferry.Ack
	dirty      bool
	wfailed    atomic.Bool
	epoch      uint64               // incremented when a write failure cuts records
	hookWrite  func(p []byte) error // tests: inject write errors
	hookSync   func() error         // tests: inject fsync errors
	nextID     uint64
	wclosed    bool  // set by Close: writes fail with ErrClosed
	fileSize   int64 // bytes that reached the active file
	kicked     int64 // of which write-out was started

	// shared state, guarded by mu
	mu         sync.Mutex
	segs       []*segInfo
	totalBytes int64
	floor      uint64 // segments below were dropped
	spaceCh    chan struct{}
	oldest     int64 // write time of the oldest unacknowledged record
	markerSeg  uint64
	// the segment of the last corruption logged: one log line per segment
	corruptSeg    uint64
	corruptLogged bool

	// Records handed from Send to the replay in memory, while the replay
	// keeps up with the writer: it need not read them back.
	hotMu    sync.Mutex
	hotOn    bool // the replay caught up; cleared when hot overflows
	hot      []hotRec[T]
	hotBytes int64
	// inMemory: the replay from memory takes copies of the items Send
	// got rather than the encoded records (see offerHot).
	inMemory bool

	dataCh   chan struct{} // cap 1: new records
	caughtCh chan struct{} // cap 1: caughtUp moved
	sealCh   chan struct{} // cap 1: a segment was sealed, sync now
	kickCh   chan struct{} // cap 1: start the write-out of the active segment
	ackMu    sync.Mutex
	acks     []ackMsg[T]
	ackCh    chan struct{} // cap 1

	stats    counters
	syncGen  atomic.Int64 // incremented after every sync
	caughtUp atomic.Int64 // the syncGen up to which replay sent everything
	itemPool sync.Pool
	descsMu  sync.Once
	descs    *descs
	ackRate  rateWindow // items acknowledged by the inner sink
}

// segInfo is what is known of one segment file.
type segInfo struct {
	id           uint64
	size         int64 // bytes in the file (written, maybe not durable)
	readable     int64 // bytes written to the file, which the replay may read
	durable      int64 // bytes made durable by an fsync
	sealed       bool
	records      int64
	items        int64
	ackedRecords int64
	ackedItems   int64
	syncRecords  int64 // records and items at the last fsync
	syncItems    int64
}

// hotRec is a record written to segment seg at [off, end), which the
// replay may take instead of reading it back: its items, copied from the
// batch Send got, or its bytes (header included).
type hotRec[T any] struct {
	seg      uint64
	off, end int64
	when     int64
	rec      []byte
	items    []T
}

// segFile is a segment file whose fsync is due: its size, records and
// items when it was handed to sync.
type segFile struct {
	id             uint64
	f              *os.File
	size           int64
	records, items int64
}

type counters struct {
	written, replayed, acked, retries, corruptions atomic.Int64
	ackedItems                                     atomic.Int64
	droppedItems, droppedRecords                   atomic.Int64
	writeErrors                                    atomic.Int64
	fromMemory                                     atomic.Int64 // records replayed without reading them back
}

// New returns a Disk buffering into dir in front of inner, encoding with
// codec.
func New[T any](dir string, inner sink.Sink[T], codec Codec[T], o Options) *Disk[T] {
	return &Disk[T]{Dir: dir, Inner: inner, Codec: codec, Options: o}
}

// copiesItems reports whether a copy of an item is as good as its
// encoding and decoding: true for this package's codecs of ferry.Entry and
// ferry.Sample, which are values whose strings and labels nobody changes.
// A user's codec may change what it encodes, and a user's type may hold
// memory its producer reuses.
func (d *Disk[T]) copiesItems() bool {
	switch any(d.Codec).(type) {
	case EntryCodec, SampleCodec, *EntryCodec, *SampleCodec:
		return true
	}
	return false
}

// Item is the set of item types with a codec in this package.
type Item interface{ ferry.Entry | ferry.Sample }

// Wrap returns a Disk buffering entries or samples into dir in front of
// inner, with NewEntryCodec or NewSampleCodec: the one line that puts a buffer
// in front of a sink,
//
//	pipeline.To(b, "loki", buffer.Wrap("/var/lib/agent/loki", lokiSink, buffer.Options{MaxBytes: 1 << 30}), logs)
func Wrap[T Item](dir string, inner sink.Sink[T], o Options) *Disk[T] {
	var c any
	switch any((*T)(nil)).(type) {
	case *ferry.Entry:
		c = NewEntryCodec()
	case *ferry.Sample:
		c = NewSampleCodec()
	}
	return New(dir, inner, c.(Codec[T]), o)
}

var _ sink.Sink[ferry.Entry] = (*Disk[ferry.Entry])(nil)
var _ ferry.Starter = (*Disk[ferry.Entry])(nil)

func (d *Disk[T]) segmentBytes() int64 {
	if d.SegmentBytes == 0 {
		return min(DefaultSegmentBytes, max(MinSegmentBytes, d.MaxBytes/8))
	}
	return d.SegmentBytes
}

// maxPayload is the largest record payload: one that fits in a segment.
func (d *Disk[T]) maxPayload() int {
	return int(d.segmentBytes() - segHeaderSize - recHeaderSize)
}

func (d *Disk[T]) recordTarget() int {
	return int(min(maxRecordTarget, d.segmentBytes()/4))
}

func (d *Disk[T]) maxInFlight() int {
	if d.MaxInFlight <= 0 {
		return DefaultMaxInFlight
	}
	return d.MaxInFlight
}

func (d *Disk[T]) maxInFlightBytes() int64 {
	if d.MaxInFlightBytes <= 0 {
		return DefaultMaxInFlightBytes
	}
	return d.MaxInFlightBytes
}

func (d *Disk[T]) name() string {
	if d.Name != "" {
		return d.Name
	}
	return filepath.Base(d.Dir)
}

// Validate reports configuration errors: no directory, inner sink or
// codec, MaxBytes missing or below one segment, a segment below
// MinSegmentBytes, an unknown policy, negative durations, and the inner
// sink's own errors if it has a Validate method.
func (d *Disk[T]) Validate() error {
	var errs []error
	if d.Dir == "" {
		errs = append(errs, errors.New("buffer: Dir is empty"))
	}
	if d.Inner == nil {
		errs = append(errs, errors.New("buffer: Inner sink is nil"))
	}
	if d.Codec == nil {
		errs = append(errs, errors.New("buffer: Codec is nil"))
	}
	if d.SegmentBytes != 0 && d.SegmentBytes < MinSegmentBytes {
		errs = append(errs, fmt.Errorf("buffer: SegmentBytes %d is below the minimum %d", d.SegmentBytes, MinSegmentBytes))
	}
	switch {
	case d.MaxBytes <= 0:
		errs = append(errs, errors.New("buffer: MaxBytes is required"))
	case d.MaxBytes < d.segmentBytes():
		errs = append(errs, fmt.Errorf("buffer: MaxBytes %d is below one segment (%d bytes)", d.MaxBytes, d.segmentBytes()))
	}
	if d.Policy != Block && d.Policy != DropOldest {
		errs = append(errs, fmt.Errorf("buffer: unknown %v", d.Policy))
	}
	if d.MinBackoff < 0 || d.MaxBackoff < 0 || d.MaxInFlight < 0 || d.MaxInFlightBytes < 0 {
		errs = append(errs, errors.New("buffer: MinBackoff, MaxBackoff, MaxInFlight and MaxInFlightBytes must not be negative"))
	}
	if v, ok := d.Inner.(interface{ Validate() error }); ok && d.Inner != nil {
		if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Start opens the directory, recovers what an earlier run left (the torn
// tail of the last segment is cut, records after the read marker are
// replayed first), starts the inner sink if it is a ferry.Starter, and
// starts the replay and sync goroutines. It fails if the configuration is
// invalid or the directory cannot be used; a failed Start may be tried
// again. A second Start returns nil and starts nothing; a Start after
// Close returns ErrClosed (internal/lifecycle's contract).
func (d *Disk[T]) Start(ctx context.Context, r ferry.Reporter) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if r == nil {
		r = ferry.NopReporter()
	}
	return d.life.Start(ErrClosed, func() error { return d.start(ctx, r) })
}

// start is Start under the lifecycle's lock.
func (d *Disk[T]) start(ctx context.Context, r ferry.Reporter) error {
	d.rep, d.log = r, r.Logger().With("buffer", d.name())
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return fmt.Errorf("buffer: directory: %w", err)
	}
	lock, err := lockDir(d.Dir)
	if err != nil {
		return fmt.Errorf("buffer: directory: %w", err)
	}
	m, err := d.recover()
	if err == nil {
		d.wmu.Lock()
		err = d.openSegment()
		d.wmu.Unlock()
	}
	if err != nil {
		lock.Close()
		return fmt.Errorf("buffer: %s: %w", d.Dir, err)
	}
	d.irep = &innerReporter{Reporter: r, log: d.log.With("inner", true), outer: d}
	if st, ok := d.Inner.(ferry.Starter); ok {
		if err := st.Start(ctx, d.irep); err != nil {
			d.wmu.Lock()
			d.sealActive()
			d.wmu.Unlock()
			d.sync()
			lock.Close()
			return err
		}
	}
	d.lock = lock
	d.closing = make(chan struct{})
	d.stopRd = make(chan struct{})
	d.rdDone = make(chan struct{})
	d.syDone = make(chan struct{})
	d.dataCh = make(chan struct{}, 1)
	d.caughtCh = make(chan struct{}, 1)
	d.sealCh = make(chan struct{}, 1)
	d.kickCh = make(chan struct{}, 1)
	d.ackCh = make(chan struct{}, 1)
	sctx, cancel := context.WithCancel(ferry.WithReporter(context.Background(), d.irep))
	d.cancel = cancel
	d.ackRate.reset(time.Now())
	d.inMemory = d.copiesItems()
	go d.replay(sctx, m)
	if d.SyncInterval >= 0 {
		go d.syncer()
	} else {
		close(d.syDone)
	}
	d.rep.SetHealth(ferry.Healthy, nil)
	return nil
}

// recover reads the marker and the segments of the directory.
func (d *Disk[T]) recover() (marker, error) {
	var m marker
	data, err := os.ReadFile(filepath.Join(d.Dir, markerName))
	switch {
	case err == nil:
		if m, err = decodeMarker(data); err != nil {
			d.stats.corruptions.Add(1)
			d.log.Error("read marker is corrupt; replaying every segment", "err", err)
			m = marker{}
		}
	case !errors.Is(err, os.ErrNotExist):
		return m, err
	}
	ids, err := listSegments(d.Dir)
	if err != nil {
		return m, err
	}
	// Built apart and published under mu: Stats may run meanwhile.
	var segs []*segInfo
	var total int64
	for i, id := range ids {
		if id < m.seg {
			if err := os.Remove(segName(d.Dir, id)); err != nil {
				return m, err
			}
			continue
		}
		si, err := d.scanSegment(id, i == len(ids)-1, m)
		if err != nil {
			return m, err
		}
		if si == nil {
			continue
		}
		segs = append(segs, si)
		total += si.size
	}
	d.nextID = 1
	if len(ids) > 0 {
		d.nextID = ids[len(ids)-1] + 1
	}
	if m.seg == 0 || len(segs) == 0 || segs[0].id != m.seg {
		// The marker's segment is gone: start at the oldest there is.
		m = marker{}
		if len(segs) > 0 {
			m = marker{seg: segs[0].id, off: segHeaderSize}
		}
	}
	if m.off < segHeaderSize {
		m.off = segHeaderSize
	}
	var recs int64
	for _, s := range segs {
		recs += s.records - s.ackedRecords
	}
	d.mu.Lock()
	d.segs, d.totalBytes, d.markerSeg = segs, total, m.seg
	d.mu.Unlock()
	if len(segs) > 0 {
		d.log.Info("buffer recovered", "segments", len(segs), "bytes", total, "records", recs)
	}
	return m, nil
}

// scanSegment reads the record headers of one segment (every checksum of
// the last one, whose tail may be torn, which is cut). It returns nil for
// a last segment too short to hold anything, after removing it.
func (d *Disk[T]) scanSegment(id uint64, last bool, m marker) (*segInfo, error) {
	path := segName(d.Dir, id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size == 0 {
		// Created and never written: a crash right after creation, or a
		// segment cut back by a failed write.
		return nil, os.Remove(path)
	}
	si := &segInfo{id: id, size: size, readable: size, durable: size, sealed: true}
	if m.seg != id {
		m = marker{}
	}
	cut, err := scanRecords(f, si, last, d.maxPayload(), m.off)
	switch {
	case errors.Is(err, errTooShort):
		// A segment whose creation a crash interrupted.
		return nil, os.Remove(path)
	case err != nil:
		d.log.Warn("reading a segment failed; the replay skips what it cannot read", "segment", filepath.Base(path), "err", err)
	}
	if cut < size {
		d.log.Warn("cutting the torn tail of the last segment", "segment", filepath.Base(path), "offset", cut, "bytes", size-cut)
		d.stats.corruptions.Add(1)
		if err := f.Truncate(cut); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		si.size, si.readable, si.durable = cut, cut, cut
	}
	return si, nil
}

// errTooShort is a last segment shorter than its header.
var errTooShort = errors.New("buffer: segment shorter than its header")

// scanRecords counts the valid records of the segment f of si.size bytes
// into si, and those ending at or before acked (the read marker's offset
// in it) as acknowledged. It returns where the segment's data ends: si.size,
// or, in the last segment, the start of damage no valid record follows (a
// torn tail, to cut). Damaged bytes between valid records are left for the
// replay, which counts and skips them. A segment in a format this build
// does not read counts nothing; a last one shorter than a header is
// errTooShort. Other errors are the file's, after which nothing more was
// counted.
func scanRecords(f io.ReaderAt, si *segInfo, last bool, maxPayload int, acked int64) (int64, error) {
	size := si.size
	hdr := make([]byte, segHeaderSize)
	_, err := f.ReadAt(hdr, 0)
	if err != nil && size <= segHeaderSize && last {
		return size, errTooShort
	}
	if err == nil {
		err = checkSegHeader(hdr)
	}
	if err != nil && !errors.Is(err, ErrCorrupt) {
		if errors.Is(err, errVersion) || errors.Is(err, io.EOF) {
			err = nil // not ours to read, or shorter than a header
		}
		return size, err
	}
	off := int64(segHeaderSize)
	rd := newSegReader(f, maxPayload)
	rh := make([]byte, recHeaderSize)
	for off < size {
		var h recHeader
		var end int64
		err = nil
		if !last {
			// Sealed segments were checksummed when written and will be
			// when replayed: walk the headers, and check checksums only
			// to find the way past damage.
			if _, err = f.ReadAt(rh, off); err == nil {
				h = readRecHeader(rh)
				end = off + recHeaderSize + int64(h.length)
				if !plausible(h, maxPayload) || end > size {
					err = errTorn
				}
			}
		}
		if last || err != nil {
			h, _, _, end, _, err = rd.nextValid(off, size, true, true)
		}
		if err != nil {
			if last && errors.Is(err, errDamaged) {
				return off, nil
			}
			if isDamage(err) {
				err = nil
			}
			return size, err
		}
		si.records++
		si.items += int64(h.items)
		if end <= acked {
			si.ackedRecords++
			si.ackedItems += int64(h.items)
		}
		off = end
	}
	return size, nil
}

// openSegment creates the next active segment. wmu is held.
func (d *Disk[T]) openSegment() error {
	id := d.nextID
	f, err := os.OpenFile(segName(d.Dir, id), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// The new name must survive a power loss as the records in it will:
	// the sync that makes them durable fsyncs the directory first.
	d.dirDirty = true
	d.nextID++
	if d.bw == nil {
		d.bw = bufio.NewWriterSize(nil, writeBuffer)
	}
	var written int64
	d.out = writerFunc(func(p []byte) (int, error) {
		if d.hookWrite != nil {
			if err := d.hookWrite(p); err != nil {
				return 0, err
			}
		}
		n, err := f.Write(p)
		if n > 0 {
			// What reached the file may be replayed before the fsync: a
			// crash then duplicates, never loses.
			written += int64(n)
			d.fileSize = written
			if written-d.kicked >= writeBackBytes {
				signal(d.kickCh)
			}
			d.mu.Lock()
			if s := d.seg(id); s != nil && !s.sealed && written > s.readable {
				s.readable = written
			}
			d.mu.Unlock()
			d.notifyData()
		}
		return n, err
	})
	d.bw.Reset(d.out)
	if _, err := d.bw.Write(segHeader()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	d.active, d.activeID, d.activeSize, d.dirty = f, id, segHeaderSize, true
	d.fileSize, d.kicked = 0, 0
	d.mu.Lock()
	d.segs = append(d.segs, &segInfo{id: id, size: segHeaderSize})
	d.totalBytes += segHeaderSize
	d.mu.Unlock()
	return nil
}

type writerFunc func(p []byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// seg returns the segInfo of id, or nil. mu is held.
func (d *Disk[T]) seg(id uint64) *segInfo {
	for _, s := range d.segs {
		if s.id == id {
			return s
		}
	}
	return nil
}

// sealActive flushes the active segment, marks it sealed and hands its
// file to the next sync, which fsyncs and closes it; the next write starts
// a new segment. wmu is held. On a failed flush the segment is cut back to
// its last durable size and the error returned.
func (d *Disk[T]) sealActive() error {
	if d.active == nil {
		return nil
	}
	err := d.bw.Flush()
	d.mu.Lock()
	s := d.seg(d.activeID)
	if s != nil && err == nil {
		s.sealed = true
		s.readable = d.activeSize
	}
	d.mu.Unlock()
	if err != nil {
		d.abandonLocked(s, err)
		d.active.Close()
	} else {
		sf := segFile{id: d.activeID, f: d.active, size: d.activeSize}
		if s != nil {
			d.mu.Lock()
			sf.records, sf.items = s.records, s.items
			d.mu.Unlock()
		}
		d.unsynced = append(d.unsynced, sf)
		signal(d.sealCh)
	}
	d.active = nil
	d.notifyData()
	return err
}

// writeOut appends p to the active segment: through the write buffer, or,
// for a large record, straight to the file after what is buffered,
// sparing a copy.
func (d *Disk[T]) writeOut(p []byte) error {
	if len(p) < directWrite {
		_, err := d.bw.Write(p)
		return err
	}
	if err := d.bw.Flush(); err != nil {
		return err
	}
	_, err := d.out.Write(p)
	return err
}

// abandonLocked handles a failed write, flush or fsync of the active
// segment: the segment is cut back to what was last made durable, every
// batch waiting for the fsync is failed (retryably: its source reads it
// again), and the next write starts a new segment. wmu is held.
func (d *Disk[T]) abandonLocked(s *segInfo, err error) {
	d.stats.writeErrors.Add(1)
	d.epoch++
	d.wfailed.Store(true)
	d.rep.SetHealth(ferry.Failing, err)
	d.log.Error("buffer write failed; failing the batches not yet durable", "err", err, "batches", len(d.pending))
	d.mu.Lock()
	if s != nil {
		s.sealed = true
		d.totalBytes -= s.size - s.durable
		s.size, s.readable = s.durable, s.durable
		s.records, s.items = s.syncRecords, s.syncItems
		s.ackedRecords, s.ackedItems = min(s.ackedRecords, s.records), min(s.ackedItems, s.items)
	}
	d.mu.Unlock()
	if d.active != nil && s != nil {
		d.active.Truncate(s.durable) // best effort: the reader stops at readable anyway
	}
	d.bw.Reset(io.Discard)
	werr := fmt.Errorf("buffer: write to %s failed: %w", d.Dir, err)
	for _, a := range d.pending {
		a.Done(werr)
	}
	d.pending = d.pending[:0]
	d.dirty = false
	d.signalSpace()
}

// Send encodes b, appends it to the active segment and returns; b is
// acknowledged once its records are durable (after the next group-commit
// fsync), or with an error if writing failed (retryable) or an item is
// larger than a segment (ferry.Permanent, counted as ReasonTooLarge). When
// MaxBytes is reached, Send waits for space (Block) or deletes the oldest
// segment (DropOldest). It returns ctx's error if ctx ends while it waits,
// ErrClosed after Close, ErrNotStarted before Start, and the write error
// when the disk failed; b is acknowledged with that error.
func (d *Disk[T]) Send(ctx context.Context, b ferry.Batch[T]) error {
	if err := d.life.Err(ErrNotStarted, ErrClosed); err != nil {
		b.Done(err)
		return err
	}
	buf := getEncBuf()
	defer putEncBuf(buf)
	tooLarge := d.encode(buf, b.Items)
	items := b.Items
	if tooLarge > 0 {
		d.rep.Dropped(ReasonTooLarge, tooLarge)
		b.Ack.Retain(1)
		b.Ack.Done(ferry.Permanentf("buffer: %d items larger than a segment dropped", tooLarge))
		items = nil // the records do not hold every item: hand over bytes
	}
	if err := d.write(ctx, buf, b.Ack, items); err != nil {
		b.Done(err)
		return err
	}
	if d.SyncInterval < 0 {
		return d.sync()
	}
	return nil
}

// encBuf holds the records of one batch being written.
type encBuf struct {
	b     []byte
	ends  []int // end offset of each record in b
	given bool  // b was handed to the replay: it is not reused
}

var encPool = sync.Pool{New: func() any { return &encBuf{} }}

func getEncBuf() *encBuf { e := encPool.Get().(*encBuf); e.b, e.ends = e.b[:0], e.ends[:0]; return e }
func putEncBuf(e *encBuf) {
	if e.given {
		// The replay owns b now; the next batch starts with as much room.
		e.b, e.given = make([]byte, 0, cap(e.b)), false
	}
	if cap(e.b) > 4<<20 {
		return
	}
	encPool.Put(e)
}

// encode appends the records of items to buf and returns how many items
// were too large to write.
func (d *Disk[T]) encode(buf *encBuf, items []T) (tooLarge int) {
	target, maxPayload := d.recordTarget(), d.maxPayload()
	now := time.Now().UnixNano()
	start, n := -1, 0
	var prev *T
	seal := func() {
		if start >= 0 && n > 0 {
			sealRecord(buf.b[start:], n, now)
			buf.ends = append(buf.ends, len(buf.b))
		} else if start >= 0 {
			buf.b = buf.b[:start]
		}
		start, n, prev = -1, 0, nil
	}
	for i := range items {
		if start < 0 {
			start = len(buf.b)
			buf.b = append(buf.b, make([]byte, recHeaderSize)...)
		}
		at := len(buf.b)
		buf.b = append(buf.b, 0, 0, 0, 0)
		buf.b = d.Codec.Append(buf.b, &items[i], prev)
		size := len(buf.b) - at - 4
		putUint32(buf.b[at:], uint32(size))
		if len(buf.b)-start-recHeaderSize > maxPayload {
			buf.b = buf.b[:at]
			if n == 0 {
				tooLarge++
				continue
			}
			seal()
			start = len(buf.b)
			buf.b = append(buf.b, make([]byte, recHeaderSize)...)
			at = len(buf.b)
			buf.b = append(buf.b, 0, 0, 0, 0)
			buf.b = d.Codec.Append(buf.b, &items[i], nil)
			putUint32(buf.b[at:], uint32(len(buf.b)-at-4))
			if len(buf.b)-start-recHeaderSize > maxPayload {
				buf.b = buf.b[:start]
				start = -1
				tooLarge++
				continue
			}
		}
		n++
		prev = &items[i]
		if len(buf.b)-start-recHeaderSize >= target {
			seal()
		}
	}
	seal()
	return tooLarge
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// write appends the records in buf, rotating segments and waiting for or
// making space as the policy says, and queues ack for the next fsync. If a
// write failure cut records of this batch while it waited for space, it
// fails. items, if not nil, are the items the records hold, in order.
func (d *Disk[T]) write(ctx context.Context, buf *encBuf, ack *ferry.Ack, items []T) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	epoch := d.epoch
	start := 0
	for _, end := range buf.ends {
		rec := buf.b[start:end:end]
		start = end
		if err := d.writeRecord(ctx, rec); err != nil {
			return err
		}
		var its []T
		if items != nil {
			n := int(readRecHeader(rec).items)
			its, items = items[:n:n], items[n:]
		}
		if d.offerHot(rec, its) {
			buf.given = true
		}
	}
	if d.epoch != epoch {
		return fmt.Errorf("buffer: write to %s failed while this batch waited", d.Dir)
	}
	if ack != nil {
		d.pending = append(d.pending, ack)
	}
	return nil
}

// writeRecord appends one sealed record. wmu is held (and released while
// waiting for space).
func (d *Disk[T]) writeRecord(ctx context.Context, rec []byte) error {
	n := int64(len(rec))
	for {
		if d.wclosed {
			return ErrClosed
		}
		if d.active != nil && d.activeSize+n > d.segmentBytes() && d.activeSize > segHeaderSize {
			if err := d.sealActive(); err != nil {
				return fmt.Errorf("buffer: write to %s failed: %w", d.Dir, err)
			}
		}
		need := n
		if d.active == nil {
			need += segHeaderSize
		}
		d.mu.Lock()
		if d.totalBytes+need <= d.MaxBytes {
			d.mu.Unlock()
			break
		}
		if d.Policy == DropOldest && d.dropOldestLocked() {
			d.mu.Unlock()
			continue
		}
		ch := d.spaceCh
		if ch == nil {
			ch = make(chan struct{})
			d.spaceCh = ch
		}
		d.mu.Unlock()
		d.wmu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-d.closing:
			err = ErrClosed
		}
		d.wmu.Lock()
		if err != nil {
			return err
		}
	}
	if d.active == nil {
		if err := d.openSegment(); err != nil {
			d.noteWriteError(err)
			return fmt.Errorf("buffer: write to %s failed: %w", d.Dir, err)
		}
	}
	// Count the record first: the replay may read it as soon as it
	// reaches the file.
	d.activeSize += n
	d.dirty = true
	d.mu.Lock()
	s := d.seg(d.activeID)
	s.size += n
	s.records++
	s.items += int64(readRecHeader(rec).items)
	d.totalBytes += n
	d.mu.Unlock()
	if err := d.writeOut(rec); err != nil {
		d.abandonLocked(s, err)
		d.active.Close()
		d.active = nil
		return fmt.Errorf("buffer: write to %s failed: %w", d.Dir, err)
	}
	d.stats.written.Add(1)
	return nil
}

func (d *Disk[T]) noteWriteError(err error) {
	d.stats.writeErrors.Add(1)
	d.wfailed.Store(true)
	d.rep.SetHealth(ferry.Failing, err)
	d.log.Error("buffer write failed", "err", err)
}

// dropOldestLocked deletes the oldest sealed segment. mu is held.
func (d *Disk[T]) dropOldestLocked() bool {
	for i, s := range d.segs {
		if !s.sealed {
			continue
		}
		d.segs = append(d.segs[:i:i], d.segs[i+1:]...)
		d.totalBytes -= s.size
		if s.id+1 > d.floor {
			d.floor = s.id + 1
		}
		items := s.items - s.ackedItems
		d.stats.droppedItems.Add(items)
		d.stats.droppedRecords.Add(s.records - s.ackedRecords)
		if items > 0 {
			d.rep.Dropped(ReasonDropOldest, int(items))
		}
		if err := os.Remove(segName(d.Dir, s.id)); err != nil {
			d.log.Warn("removing a dropped segment", "err", err)
		}
		d.notifyData()
		return true
	}
	return false
}

// signalSpace wakes Sends waiting for space.
func (d *Disk[T]) signalSpace() {
	d.mu.Lock()
	if d.spaceCh != nil {
		close(d.spaceCh)
		d.spaceCh = nil
	}
	d.mu.Unlock()
}

func (d *Disk[T]) notifyData() { signal(d.dataCh) }

// signal wakes the receiver of ch, a channel of capacity 1, unless it is
// already due to wake.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sync makes everything written durable and acknowledges the batches
// waiting for it. The write buffer is flushed under wmu; the fsyncs (of
// the segments sealed since the last sync, of the active one and of the
// directory when a segment was created) run outside it, so that Sends go
// on writing meanwhile, and the batches written before the flush are
// acknowledged after them. A failed fsync cuts every segment back to what
// was last durable and fails the batches that waited for it.
func (d *Disk[T]) sync() error {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	d.wmu.Lock()
	if !d.dirty && len(d.pending) == 0 && len(d.unsynced) == 0 && !d.dirDirty {
		d.syncGen.Add(1)
		d.wmu.Unlock()
		d.notifyData()
		return nil
	}
	if d.active != nil && d.dirty {
		if err := d.bw.Flush(); err != nil {
			d.mu.Lock()
			s := d.seg(d.activeID)
			d.mu.Unlock()
			d.abandonLocked(s, err)
			d.active.Close()
			d.active = nil
			d.wmu.Unlock()
			return fmt.Errorf("buffer: write to %s failed: %w", d.Dir, err)
		}
	}
	sealed := d.unsynced
	d.unsynced = nil
	files := sealed
	if d.active != nil && d.dirty {
		sf := segFile{id: d.activeID, f: d.active, size: d.activeSize}
		d.mu.Lock()
		if s := d.seg(d.activeID); s != nil {
			sf.records, sf.items = s.records, s.items
		}
		d.mu.Unlock()
		files = append(files[:len(files):len(files)], sf)
	}
	dir := d.dirDirty
	d.dirDirty = false
	acks := d.pending
	d.pending = d.spare[:0]
	d.spare = nil
	d.dirty = false
	epoch := d.epoch
	d.wmu.Unlock()

	// The directory first: the names of new segments must be durable
	// before the records in them count as durable.
	var err error
	if dir {
		err = syncDir(d.Dir)
	}
	for _, sf := range files {
		if err != nil {
			break
		}
		if d.hookSync != nil {
			err = d.hookSync()
		}
		if err == nil {
			err = sf.f.Sync()
		}
	}

	d.wmu.Lock()
	if err == nil && d.epoch != epoch {
		// A failed write cut records of the active segment back to its
		// last durable size while the fsync ran: some of these batches
		// may be among them.
		err = errors.New("a write failed during the fsync")
	}
	if err != nil {
		// Nothing after the last durable size of any segment can be
		// trusted: cut every segment back to it, including those sealed
		// while the fsync ran.
		d.dirDirty = d.dirDirty || dir
		for _, sf := range append(sealed, d.unsynced...) {
			d.cutBack(sf)
			sf.f.Close()
		}
		d.unsynced = nil
		if d.active != nil {
			d.mu.Lock()
			s := d.seg(d.activeID)
			d.mu.Unlock()
			d.abandonLocked(s, err)
			d.active.Close()
			d.active = nil
		} else {
			d.abandonLocked(nil, err)
		}
		d.wmu.Unlock()
		werr := fmt.Errorf("buffer: write to %s failed: %w", d.Dir, err)
		for _, a := range acks {
			a.Done(werr)
		}
		return werr
	}
	d.mu.Lock()
	for _, sf := range files {
		if s := d.seg(sf.id); s != nil && sf.size > s.durable {
			s.durable = sf.size
			s.syncRecords, s.syncItems = sf.records, sf.items
		}
	}
	d.mu.Unlock()
	for _, sf := range sealed {
		sf.f.Close()
	}
	recovered := d.wfailed.Swap(false)
	d.syncGen.Add(1)
	d.wmu.Unlock()
	if recovered {
		d.rep.SetHealth(ferry.Healthy, nil)
		d.log.Info("buffer writes succeed again")
	}
	d.notifyData()
	for i, a := range acks {
		a.Done(nil)
		acks[i] = nil
	}
	d.wmu.Lock()
	if d.spare == nil {
		d.spare = acks[:0]
	}
	d.wmu.Unlock()
	return nil
}

// cutBack cuts a sealed segment whose fsync failed back to its last
// durable size. wmu is held.
func (d *Disk[T]) cutBack(sf segFile) {
	d.mu.Lock()
	s := d.seg(sf.id)
	if s == nil {
		d.mu.Unlock()
		return
	}
	d.totalBytes -= s.size - s.durable
	s.size, s.readable = s.durable, s.durable
	s.records, s.items = s.syncRecords, s.syncItems
	s.ackedRecords, s.ackedItems = min(s.ackedRecords, s.records), min(s.ackedItems, s.items)
	durable := s.durable
	d.mu.Unlock()
	sf.f.Truncate(durable) // best effort: the reader stops at readable anyway
}

func (d *Disk[T]) syncer() {
	defer close(d.syDone)
	iv := d.SyncInterval
	if iv == 0 {
		iv = DefaultSyncInterval
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.sync()
		case <-d.sealCh:
			// A segment was sealed: its fsync overlaps the writing of the
			// next one rather than adding to the next interval's.
			d.sync()
		case <-d.kickCh:
			d.writeBack()
		case <-d.closing:
			return
		}
	}
}

// writeBack starts the write-out of what reached the active segment since
// the last call, without waiting for it (Linux's sync_file_range; nothing
// elsewhere), so that the fsync at the end of the interval, or at Close,
// finds little left to write.
func (d *Disk[T]) writeBack() {
	d.syncMu.Lock() // files are closed under syncMu only
	defer d.syncMu.Unlock()
	d.wmu.Lock()
	f, from, to := d.active, d.kicked, d.fileSize
	d.kicked = to
	d.wmu.Unlock()
	if f != nil && to > from {
		startWriteBack(f, from, to-from)
	}
}

// Close stops accepting batches, makes what was written durable and
// acknowledges it, goes on replaying until every record was handed to the
// inner sink (or ctx ends), then stops the replay, closes the inner sink
// with ctx (which flushes what it holds and fails the rest), saves the
// read marker and closes the files. What was not delivered stays on disk
// for the next Start. It is safe without Start (it closes the inner sink)
// and safe twice (the second returns the first one's error).
func (d *Disk[T]) Close(ctx context.Context) error {
	return d.life.Close(func(started bool) error { return d.close(ctx, started) })
}

// close is Close under the lifecycle's lock.
func (d *Disk[T]) close(ctx context.Context, started bool) error {
	if !started {
		if d.Inner != nil {
			return d.Inner.Close(ctx)
		}
		return nil
	}
	d.wmu.Lock()
	d.wclosed = true // a Send that passed the check above writes nothing
	d.wmu.Unlock()
	close(d.closing)
	<-d.syDone
	serr := d.sync()
	// Replay what is left while ctx allows: wait until every record was
	// handed to the inner sink, whose Close then flushes them at once. The
	// rest stays on disk. (An inner sink that is down makes this wait
	// until ctx ends: it may come back meanwhile.)
	gen := d.syncGen.Load()
	d.notifyData()
wait:
	for d.caughtUp.Load() < gen {
		select {
		case <-d.caughtCh:
		case <-ctx.Done():
			break wait
		}
	}
	d.cancel() // the replay stops sending
	if err := d.Inner.Close(ferry.WithReporter(ctx, d.irep)); err != nil {
		// Not an error of the buffer: what the inner sink did not deliver
		// is still on disk.
		d.log.Warn("inner sink closed with undelivered data; it stays in the buffer", "err", err)
	}
	close(d.stopRd)
	<-d.rdDone
	// Nothing was written since the sync above: seal the active segment
	// and close the files.
	d.wmu.Lock()
	cerr := d.sealActive()
	d.wmu.Unlock()
	if cerr == nil {
		cerr = d.sync()
	}
	d.lock.Close()
	return errors.Join(serr, cerr)
}

// innerReporter is the Reporter the inner sink gets: its health is
// combined with the buffer's (the worse wins), and what it gave up on after
// its retries (ferry.ReasonRetriesExhausted) is not a drop, since the
// buffer sends the record again: it counts as a retry. The rest passes
// through.
type innerReporter struct {
	ferry.Reporter
	log   *slog.Logger
	outer interface{ diskFailing() bool }
}

func (r *innerReporter) Logger() *slog.Logger { return r.log }

func (r *innerReporter) SetHealth(h ferry.Health, err error) {
	if r.outer.diskFailing() {
		return
	}
	r.Reporter.SetHealth(h, err)
}

func (r *innerReporter) Dropped(reason string, n int) {
	if reason == ferry.ReasonRetriesExhausted {
		r.Reporter.Retried()
		return
	}
	r.Reporter.Dropped(reason, n)
}

func (d *Disk[T]) pendingRecords() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for _, s := range d.segs {
		n += s.records - s.ackedRecords
	}
	return n
}

func (d *Disk[T]) diskFailing() bool { return d.wfailed.Load() }
