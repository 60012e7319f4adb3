package buffer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/retry"
)

// flight is one record replayed to the inner sink and not yet freed.
type flight[T any] struct {
	seg      uint64
	off, end int64
	nitems   uint32
	when     int64
	payload  []byte // kept for retries; decoded items alias it
	hot      []T    // handed over in memory: sent as they are the first time
	state    uint8
	attempts int
}

const (
	flSending uint8 = iota
	flDone
	flFailed
)

type ackMsg[T any] struct {
	f   *flight[T]
	err error
}

func (d *Disk[T]) pushAck(f *flight[T], err error) {
	d.ackMu.Lock()
	d.acks = append(d.acks, ackMsg[T]{f, err})
	d.ackMu.Unlock()
	signal(d.ackCh)
}

// readPos is where the replay reads.
type readPos struct {
	seg     uint64
	off     int64
	f       *os.File
	rd      *segReader
	skip    bool // the rest of this segment is unreadable
	damaged bool // the bytes at off are damaged, already counted
}

func (p *readPos) close() {
	if p.f != nil {
		p.f.Close()
		p.f, p.rd = nil, nil
	}
}

// replay reads records after the marker m and sends them to the inner
// sink, at most MaxInFlight at a time; it frees segments whose records were
// all acknowledged and persists the marker. It runs until Close.
func (d *Disk[T]) replay(ctx context.Context, m marker) {
	defer close(d.rdDone)
	pos := &readPos{seg: m.seg, off: m.off}
	defer pos.close()
	var window []*flight[T]
	var windowBytes int64
	saved := m
	lastSave := time.Now()
	markerEvery := d.SyncInterval
	if markerEvery <= 0 {
		markerEvery = 100 * time.Millisecond
		if d.SyncInterval == 0 {
			markerEvery = DefaultSyncInterval
		}
	}
	bo := retry.Backoff{Min: or(d.MinBackoff, DefaultMinBackoff), Max: or(d.MaxBackoff, DefaultMaxBackoff)}
	var retryAt time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stopping := false
	for {
		// Outcomes from the inner sink.
		d.ackMu.Lock()
		acks := d.acks
		d.acks = nil
		d.ackMu.Unlock()
		for _, a := range acks {
			if a.f.state != flSending {
				continue // popped (its segment was dropped)
			}
			if ferry.Settled(a.err) {
				a.f.state = flDone
				a.f.payload = nil
				bo.Reset()
				continue
			}
			a.f.state = flFailed
			d.stats.retries.Add(1)
			d.rep.Retried()
			wait := bo.Next()
			retryAt = time.Now().Add(wait)
			if a.f.attempts == 1 || a.f.attempts%10 == 0 {
				d.log.Warn("inner sink failed a replayed record; retrying from disk", "err", a.err, "attempt", a.f.attempts, "backoff", wait)
			}
		}
		// Free what is done, in order.
		d.mu.Lock()
		floor := d.floor
		d.mu.Unlock()
		popped := 0
		var ackedItems int64
		for len(window) > 0 && (window[0].state == flDone || window[0].seg < floor) {
			f := window[0]
			if f.seg >= floor {
				d.mu.Lock()
				// A record a failed write or fsync cut back (sent before
				// it) no longer counts in its segment.
				if s := d.seg(f.seg); s != nil && f.end <= s.size {
					s.ackedRecords++
					s.ackedItems += int64(f.nitems)
				}
				d.mu.Unlock()
				d.stats.acked.Add(1)
				ackedItems += int64(f.nitems)
			}
			f.state = flDone
			windowBytes -= f.end - f.off
			window[0] = nil
			window = window[1:]
			popped++
		}
		if ackedItems > 0 {
			d.stats.ackedItems.Add(ackedItems)
			d.ackRate.add(time.Now(), ackedItems)
		}
		cur := marker{seg: pos.seg, off: pos.off}
		if len(window) > 0 {
			cur = marker{seg: window[0].seg, off: window[0].off}
			d.mu.Lock()
			d.oldest = window[0].when
			d.mu.Unlock()
		} else {
			d.mu.Lock()
			d.oldest = 0
			d.mu.Unlock()
		}
		if cur.seg < floor {
			cur = marker{seg: floor, off: segHeaderSize}
		}
		if cur != saved {
			d.freeBefore(cur.seg)
			if stopping || time.Since(lastSave) >= markerEvery {
				d.saveMarker(cur)
				saved, lastSave = cur, time.Now()
			}
		}
		if stopping {
			return
		}
		// Retries, then new records.
		if ctx.Err() == nil {
			failed := false
			for _, f := range window {
				if f.state == flFailed {
					failed = true
					break
				}
			}
			if failed && !time.Now().Before(retryAt) {
				for _, f := range window {
					if f.state == flFailed {
						d.send(ctx, f)
					}
				}
				failed = false
			}
			gen := d.syncGen.Load()
			for !failed && len(window) < d.maxInFlight() && windowBytes < d.maxInFlightBytes() && ctx.Err() == nil {
				f := d.readNext(pos, floor)
				if f == nil {
					d.caughtUpHot()
					if d.caughtUp.Swap(gen) != gen { // everything readable at gen was sent
						signal(d.caughtCh)
					}
					break
				}
				window = append(window, f)
				windowBytes += f.end - f.off
				if len(window) == 1 {
					// The oldest record waiting, even while the inner
					// sink holds this send.
					d.mu.Lock()
					d.oldest = f.when
					d.mu.Unlock()
				}
				d.send(ctx, f)
			}
			if failed {
				timer.Reset(time.Until(retryAt))
			} else if cur != saved || len(window) > 0 {
				timer.Reset(markerEvery)
			}
		}
		select {
		case <-d.ackCh:
		case <-d.dataCh:
		case <-timer.C:
		case <-d.stopRd:
			stopping = true
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func or(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// send decodes f and hands it to the inner sink: the items handed over
// in memory the first time, decoded from the record after (re-read from
// the file if it was handed over as items). A retry of a record that a
// failed write or fsync cut back meanwhile is settled instead: its batch
// failed upstream, and its source sends it again.
func (d *Disk[T]) send(ctx context.Context, f *flight[T]) {
	if f.hot != nil {
		items := f.hot
		f.hot = nil
		d.handOver(ctx, f, items)
		return
	}
	if f.attempts > 0 && d.wasCut(f) {
		d.log.Debug("a record to retry was cut back by a failed write; its source sends it again")
		d.settle(f)
		return
	}
	if f.payload == nil {
		if err := d.reread(f); err != nil {
			// It can never be delivered. A record cut back since the
			// check above is no corruption either.
			if !d.wasCut(f) {
				d.corrupt(f.seg, f.off, f.end-f.off, err)
			}
			d.settle(f)
			return
		}
	}
	items := d.getItems(int(f.nitems))
	var prev *T
	err := forEachItem(f.payload, f.nitems, func(i int, b []byte) error {
		if err := d.Codec.Decode(b, &items[i], prev); err != nil {
			return err
		}
		prev = &items[i]
		return nil
	})
	if err != nil {
		d.corrupt(f.seg, f.off, f.end-f.off, err)
		d.settle(f) // it can never be delivered
		return
	}
	d.handOver(ctx, f, items)
}

// settle ends f without sending it, as if the inner sink had delivered it:
// the replay frees its place in order like any other.
func (d *Disk[T]) settle(f *flight[T]) {
	f.state = flSending
	d.pushAck(f, nil)
}

// handOver sends the items of f to the inner sink; their slice returns to
// the pool when the inner sink is done with it.
func (d *Disk[T]) handOver(ctx context.Context, f *flight[T], items []T) {
	f.state = flSending
	f.attempts++
	d.stats.replayed.Add(1)
	d.Inner.Send(ctx, ferry.NewBatch(items, func(err error) {
		d.putItems(items)
		d.pushAck(f, err)
	}))
}

// wasCut reports whether a failed write or fsync cut f's record back.
func (d *Disk[T]) wasCut(f *flight[T]) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.seg(f.seg)
	return s == nil || f.end > s.readable
}

// reread reads the payload of f, replayed from memory before, from its
// segment file, checking its checksum.
func (d *Disk[T]) reread(f *flight[T]) error {
	file, err := os.Open(segName(d.Dir, f.seg))
	if err != nil {
		return err
	}
	defer file.Close()
	_, payload, _, err := newSegReader(file, d.maxPayload()).next(f.off, f.end, false)
	if err != nil {
		return err
	}
	f.payload = payload
	return nil
}

// getItems returns a slice of n items, reused from batches the inner sink
// is done with: the Batch contract lets the producer reuse it after Done.
func (d *Disk[T]) getItems(n int) []T {
	if p, ok := d.itemPool.Get().(*[]T); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]T, n)
}

func (d *Disk[T]) putItems(items []T) {
	clear(items)
	items = items[:0]
	d.itemPool.Put(&items)
}

// corrupt counts damaged bytes skipped (n of them, at off in segment seg),
// or an undecodable record, and logs the first of each segment.
func (d *Disk[T]) corrupt(seg uint64, off, n int64, err error) {
	d.stats.corruptions.Add(1)
	d.mu.Lock()
	first := !d.corruptLogged || d.corruptSeg != seg
	d.corruptLogged, d.corruptSeg = true, seg
	d.mu.Unlock()
	if first {
		d.log.Error("corrupt data in the buffer; skipping it (further damage in this segment is counted, not logged)",
			"segment", filepath.Base(segName(d.Dir, seg)), "offset", off, "bytes", n, "err", err)
	}
}

// readNext returns the next durable record after pos, or nil if there is
// none yet.
func (d *Disk[T]) readNext(pos *readPos, floor uint64) *flight[T] {
	for {
		d.mu.Lock()
		var s *segInfo
		for _, x := range d.segs {
			if x.id >= pos.seg && x.id >= floor {
				s = x
				break
			}
		}
		var limit int64
		var sealed bool
		if s != nil {
			limit, sealed = s.readable, s.sealed
		}
		d.mu.Unlock()
		if s == nil {
			return nil
		}
		if limit <= segHeaderSize {
			if !sealed {
				return nil // nothing durable yet
			}
			pos.close()
			pos.seg, pos.off, pos.skip = s.id+1, segHeaderSize, false
			continue
		}
		if s.id != pos.seg || pos.f == nil {
			if s.id != pos.seg {
				pos.close()
				pos.seg, pos.off, pos.skip = s.id, segHeaderSize, false
			}
			f, err := os.Open(segName(d.Dir, s.id))
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					pos.seg++ // dropped meanwhile
					continue
				}
				d.corrupt(s.id, 0, limit, err)
				pos.skip = true
			} else {
				pos.f, pos.rd = f, newSegReader(f, d.maxPayload())
				hdr := make([]byte, segHeaderSize)
				if _, err := f.ReadAt(hdr, 0); err == nil {
					err = checkSegHeader(hdr)
					if err != nil && pos.off <= segHeaderSize {
						d.corrupt(s.id, 0, segHeaderSize, err)
						// A damaged magic costs only itself; a version
						// this build does not read costs the segment.
						pos.skip = !errors.Is(err, ErrCorrupt)
					}
				} else if sealed {
					d.corrupt(s.id, 0, limit, err)
					pos.skip = true
				} else {
					pos.close() // header not durable yet
					return nil
				}
			}
			if pos.off < segHeaderSize {
				pos.off = segHeaderSize
			}
		}
		if pos.skip || pos.off >= limit {
			if sealed {
				pos.close()
				pos.seg, pos.off, pos.skip = s.id+1, segHeaderSize, false
				continue
			}
			return nil
		}
		if hr, ok := d.takeHot(s.id, pos.off, limit); ok {
			f := &flight[T]{seg: s.id, off: pos.off, end: hr.end, when: hr.when}
			if hr.items != nil {
				f.hot, f.nitems = hr.items, uint32(len(hr.items))
			} else {
				h := readRecHeader(hr.rec)
				f.nitems, f.payload = h.items, hr.rec[recHeaderSize:]
			}
			pos.off = f.end
			d.stats.fromMemory.Add(1)
			return f
		}
		h, payload, start, end, skipped, err := pos.rd.nextValid(pos.off, limit, sealed, false)
		switch {
		case err == nil:
		case errors.Is(err, errTorn):
			// The rest of the record is still in the write buffer; or
			// damaged bytes that records not yet written may follow.
			if skipped > 0 && !pos.damaged {
				d.corrupt(s.id, pos.off, skipped, errCorrupt("bad length or checksum"))
				pos.damaged = true
			}
			return nil
		case errors.Is(err, errDamaged):
			// Nothing valid up to the end of a sealed segment.
			if !pos.damaged {
				d.corrupt(s.id, pos.off, skipped, err)
			}
			pos.close()
			pos.seg, pos.off, pos.skip, pos.damaged = s.id+1, segHeaderSize, false, false
			continue
		default:
			// The file could not be read: skip the rest of it.
			d.corrupt(s.id, pos.off, limit-pos.off, err)
			pos.skip = true
			continue
		}
		if skipped > 0 && !pos.damaged {
			d.corrupt(s.id, pos.off, skipped, errCorrupt("bad length or checksum"))
		}
		pos.damaged = false
		f := &flight[T]{seg: s.id, off: start, end: end, nitems: h.items, when: h.time, payload: payload}
		pos.off = end
		return f
	}
}

// freeBefore deletes the sealed segments before seg: all of their records
// were acknowledged.
func (d *Disk[T]) freeBefore(seg uint64) {
	var gone []uint64
	d.mu.Lock()
	d.markerSeg = seg
	keep := d.segs[:0]
	for _, s := range d.segs {
		if s.id < seg && s.sealed {
			gone = append(gone, s.id)
			d.totalBytes -= s.size
			continue
		}
		keep = append(keep, s)
	}
	for i := len(keep); i < len(d.segs); i++ {
		d.segs[i] = nil
	}
	d.segs = keep
	d.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	for _, id := range gone {
		if err := os.Remove(segName(d.Dir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("removing an acknowledged segment", "err", err)
		}
	}
	d.signalSpace()
}

func (d *Disk[T]) saveMarker(m marker) {
	if err := writeMarker(d.Dir, m); err != nil {
		d.log.Warn("saving the read marker failed; a restart replays more", "err", err)
	}
}

// offerHot hands the record rec, just written at the end of the active
// segment, to the replay, if it keeps up with the writer. With inMemory
// and items (the items rec holds) it hands over a copy of items: the
// replay then neither decodes nor reads, and Send reuses its buffer.
// Otherwise it hands over rec and reports so: rec then must not change.
// When the replay falls behind by more than MaxInFlightBytes, what it was
// handed is let go and it reads the file until it catches up again. wmu
// is held.
func (d *Disk[T]) offerHot(rec []byte, items []T) (tookRec bool) {
	n := int64(len(rec))
	d.hotMu.Lock()
	defer d.hotMu.Unlock()
	if !d.hotOn {
		return false
	}
	if d.hotBytes+n > d.maxInFlightBytes() {
		d.hotOn = false
		for i := range d.hot {
			if d.hot[i].items != nil {
				d.putItems(d.hot[i].items)
			}
		}
		clear(d.hot)
		d.hot, d.hotBytes = d.hot[:0], 0
		return false
	}
	h := hotRec[T]{seg: d.activeID, off: d.activeSize - n, end: d.activeSize, when: readRecHeader(rec).time}
	if d.inMemory && items != nil {
		h.items = d.getItems(len(items))
		copy(h.items, items)
	} else {
		h.rec = rec
	}
	d.hot = append(d.hot, h)
	d.hotBytes += n
	return h.rec != nil
}

// takeHot returns the record at off in segment seg if Send handed it over
// and it is readable (below limit), forgetting the records before it.
func (d *Disk[T]) takeHot(seg uint64, off, limit int64) (hotRec[T], bool) {
	d.hotMu.Lock()
	defer d.hotMu.Unlock()
	for len(d.hot) > 0 {
		h := d.hot[0]
		if h.seg > seg || (h.seg == seg && h.off > off) {
			return hotRec[T]{}, false
		}
		if h.seg == seg && h.off == off && h.end > limit {
			return hotRec[T]{}, false
		}
		d.hotBytes -= h.end - h.off
		d.hot[0] = hotRec[T]{}
		d.hot = d.hot[1:]
		if len(d.hot) == 0 {
			d.hot = d.hot[:0:0]
		}
		if h.seg == seg && h.off == off {
			return h, true
		}
		if h.items != nil {
			d.putItems(h.items)
		}
	}
	return hotRec[T]{}, false
}

// caughtUpHot tells Send that the replay has read everything written: the
// next records may be handed over in memory.
func (d *Disk[T]) caughtUpHot() {
	d.hotMu.Lock()
	d.hotOn = true
	d.hotMu.Unlock()
}
