package positions

import (
	"sync"

	"github.com/ferrydev/ferry"
)

// Tracker turns acknowledgements that arrive in any order into a position
// that only moves forward over data that is settled.
//
// A source calls Track with the position just past each batch it emits and
// gives the batch the returned function as its acknowledgement. Committed is
// then the position of the last batch below which every batch was settled
// (ferry.Settled): delivered, or dropped for good. A batch whose outcome is
// an unsettled error stops the position there until Reset: the data after it
// has to be read again, at the latest on the next start.
type Tracker[P any] struct {
	mu        sync.Mutex
	pending   []pendingPos[P] // issue order; pending[head:] are open
	head      int
	base      uint64 // sequence number of pending[0]
	committed P
	ok        bool
	err       error
	onCommit  func(P)
}

type pendingPos[P any] struct {
	pos     P
	settled bool
}

// NewTracker returns a Tracker whose committed position starts at start (if
// ok) and which calls onCommit, if not nil, each time it moves. onCommit runs
// with the tracker locked and must not call back into it.
func NewTracker[P any](start P, ok bool, onCommit func(P)) *Tracker[P] {
	return &Tracker[P]{committed: start, ok: ok, onCommit: onCommit}
}

// Track registers a batch that ends at pos and returns its acknowledgement,
// to be called exactly once, typically through ferry.NewBatch.
func (t *Tracker[P]) Track(pos P) func(error) {
	t.mu.Lock()
	seq := t.base + uint64(len(t.pending))
	t.pending = append(t.pending, pendingPos[P]{pos: pos})
	t.mu.Unlock()
	return func(err error) { t.done(seq, err) }
}

func (t *Tracker[P]) done(seq uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.base+uint64(t.head) {
		return // from before a Reset
	}
	i := int(seq - t.base)
	if ferry.Settled(err) {
		t.pending[i].settled = true
	} else {
		if t.err == nil {
			t.err = err
		}
	}
	moved := false
	for t.head < len(t.pending) && t.pending[t.head].settled {
		t.committed, t.ok = t.pending[t.head].pos, true
		t.head++
		moved = true
	}
	if t.head == len(t.pending) || t.head > 1024 && t.head*2 > len(t.pending) {
		t.base += uint64(t.head)
		t.pending = append(t.pending[:0], t.pending[t.head:]...)
		t.head = 0
	}
	if moved && t.onCommit != nil {
		t.onCommit(t.committed)
	}
}

// Committed returns the committed position and whether there is one.
func (t *Tracker[P]) Committed() (P, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committed, t.ok
}

// Pending reports how many tracked batches await an outcome or are blocked
// behind one that failed.
func (t *Tracker[P]) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) - t.head
}

// Err returns the first unsettled outcome seen since the last Reset, if any.
// While it is not nil the committed position cannot pass that batch.
func (t *Tracker[P]) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Reset forgets every batch in flight, as a source does when it rewinds to
// Committed to read again; outcomes of forgotten batches are ignored.
func (t *Tracker[P]) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.base += uint64(len(t.pending))
	t.pending = t.pending[:0]
	t.head = 0
	t.err = nil
}
