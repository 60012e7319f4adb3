package source

import (
	"context"

	"github.com/ferrydev/ferry"
)

// Slice is a finite Source for tests and examples: it emits its items in
// batches of BatchSize (default all at once), then returns. Each Run emits
// everything again. If Acked is set, it is called with the outcome of each
// batch.
type Slice[T any] struct {
	Items     []T
	BatchSize int
	Acked     func(err error)
}

// Run emits the items and returns nil, or returns early when ctx is done.
func (s *Slice[T]) Run(ctx context.Context, out chan<- ferry.Batch[T]) error {
	n := s.BatchSize
	if n <= 0 {
		n = max(len(s.Items), 1)
	}
	for i := 0; i < len(s.Items); i += n {
		part := append([]T(nil), s.Items[i:min(i+n, len(s.Items))]...)
		if err := Send(ctx, out, ferry.NewBatch(part, s.Acked)); err != nil {
			return nil
		}
	}
	return nil
}
