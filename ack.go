package ferry

import (
	"sync/atomic"
)

// Ack tracks the delivery of one batch to every owner that holds a part of
// it, and reports the outcome once, to the function given to NewAck, when the
// last owner is done.
//
// An Ack starts with one owner. Whoever hands the same data to several
// owners (a fan-out, a processor that splits a batch) calls Retain for each
// additional owner first; every owner calls Done exactly once. The outcome is
// nil if every owner reported nil, otherwise the first error reported. A nil
// *Ack is valid and does nothing, so data without an acknowledgement needs no
// special case.
type Ack struct {
	refs atomic.Int64
	err  atomic.Pointer[error]
	fn   func(error)
}

// NewAck returns an Ack with one owner that calls fn with the outcome when
// the last owner is done. fn runs on the goroutine of the last Done call and
// must not block for long: it is usually a sink's sending goroutine.
func NewAck(fn func(error)) *Ack {
	a := &Ack{fn: fn}
	a.refs.Store(1)
	return a
}

// Retain adds n owners. It must be called by a current owner, before the
// data is handed on, so that the count can never reach zero early.
func (a *Ack) Retain(n int) {
	if a == nil || n == 0 {
		return
	}
	a.refs.Add(int64(n))
}

// Done reports that one owner has finished with its part: err is nil when
// the part was delivered (or deliberately filtered out), and the reason
// otherwise. The outcome is reported once: calls after the last owner's are
// ignored. Calling Done more often than there are owners is still a bug,
// since an owner's extra call counts for another owner and can report the
// outcome before that owner is done.
func (a *Ack) Done(err error) {
	if a == nil {
		return
	}
	if err != nil {
		a.err.CompareAndSwap(nil, &err)
	}
	if a.refs.Add(-1) != 0 {
		return
	}
	if a.fn != nil {
		var out error
		if p := a.err.Load(); p != nil {
			out = *p
		}
		a.fn(out)
	}
}

// JoinAcks returns an Ack that completes every ack in acks with its outcome.
// A processor that merges batches gives the merged batch the joined Ack of
// its inputs. Nil acks are skipped; with no non-nil ack it returns nil.
func JoinAcks(acks ...*Ack) *Ack {
	n := 0
	for _, a := range acks {
		if a != nil {
			acks[n] = a
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return acks[0]
	}
	parents := append([]*Ack(nil), acks[:n]...)
	return NewAck(func(err error) {
		for _, p := range parents {
			p.Done(err)
		}
	})
}

// Batch is the unit that travels between components: a slice of items and
// the acknowledgement of their delivery.
//
// The receiver of a batch owns it: it may modify Items in place (a processor
// relabels or filters entries without copying), and it must call Done
// exactly once, or pass the batch on to an owner that will. After Done the
// slice must not be touched again, since its producer may reuse it.
type Batch[T any] struct {
	Items []T
	Ack   *Ack
}

// NewBatch returns a batch of items whose outcome is reported to done.
// A nil done makes a batch nobody waits for.
func NewBatch[T any](items []T, done func(error)) Batch[T] {
	if done == nil {
		return Batch[T]{Items: items}
	}
	return Batch[T]{Items: items, Ack: NewAck(done)}
}

// Done reports the outcome of this owner's share of the batch. See Ack.Done.
func (b Batch[T]) Done(err error) { b.Ack.Done(err) }
