package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

// senders is a source that sends batches of one entry from several
// goroutines at once, each through source.Send, and counts the sends in
// progress; with raw set, every other batch is written to the channel
// directly instead.
type senders struct {
	goroutines, each int
	raw              bool
	sending          atomic.Int32
	acked            atomic.Int64
}

func (s *senders) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	var wg sync.WaitGroup
	for g := range s.goroutines {
		wg.Go(func() {
			for i := range s.each {
				b := ferry.NewBatch([]ferry.Entry{{Line: fmt.Sprintf("%d-%d", g, i)}}, func(err error) {
					if err == nil {
						s.acked.Add(1)
					}
				})
				if s.raw && i%2 == 1 {
					out <- b
					continue
				}
				s.sending.Add(1)
				err := source.Send(ctx, out, b)
				s.sending.Add(-1)
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// TestInlineChainsRunOnTheSender checks that under WithInlineChains the
// chain runs inside source.Send, one batch at a time although several
// goroutines send (the processor's counts are not synchronised: the race
// detector would see two calls at once), and that every batch is delivered
// and acknowledged; and that batches a source writes to its channel
// directly go through the chain too, on the chain's own goroutine, between
// the inline ones.
func TestInlineChainsRunOnTheSender(t *testing.T) {
	for _, tc := range []struct {
		name        string
		src         *senders
		wantOutside int
	}{
		{"send", &senders{goroutines: 4, each: 250}, 0},
		{"send-and-raw", &senders{goroutines: 2, each: 500, raw: true}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			var calls, outside int // guarded by the chain's lock, as the test checks
			fake := &sinktest.Sink[ferry.Entry]{}
			b := pipeline.New(pipeline.WithInlineChains(), pipeline.WithLogger(quiet()))
			s := pipeline.Process(b, "check", process.Func[ferry.Entry](func(_ context.Context, bt ferry.Batch[ferry.Entry]) (ferry.Batch[ferry.Entry], error) {
				calls++
				if src.sending.Load() == 0 {
					outside++
				}
				return bt, nil
			}), pipeline.FromSource(b, "senders", src))
			pipeline.To(b, "fake", fake, s)
			p, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v", err)
			}
			// With raw sends, a raw batch may run while another goroutine
			// is in a Send: at most wantOutside calls outside one.
			if calls != 1000 || outside > tc.wantOutside || fake.Len() != 1000 || src.acked.Load() != 1000 {
				t.Fatalf("%d calls, %d outside a Send, %d delivered, %d acknowledged; want 1000, at most %d, 1000, 1000",
					calls, outside, fake.Len(), src.acked.Load(), tc.wantOutside)
			}
		})
	}
}

// idleAfter runs a counter and then waits for its context, as a source
// that has nothing more to read.
type idleAfter struct{ c *counter }

func (s idleAfter) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := s.c.Run(ctx, out); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// TestInlineChainsFlushOnTimer checks that a holding processor in an
// inline chain is still flushed on the flush interval while its source
// sends nothing.
func TestInlineChainsFlushOnTimer(t *testing.T) {
	src := &counter{batch: 5, limit: 5}
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New(pipeline.WithInlineChains(), pipeline.WithFlushInterval(20*time.Millisecond), pipeline.WithLogger(quiet()))
	s := pipeline.Process(b, "hold", &holder{}, pipeline.FromSource(b, "counter", idleAfter{src}))
	pipeline.To(b, "fake", fake, s)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, p, ctx)
	if !fake.WaitLen(5, 10*time.Second) {
		t.Fatal("the held batch was not flushed on the timer")
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, acked := src.snapshot(); len(acked) != 1 || acked[0] != nil {
		t.Fatalf("acks %v, want one nil", acked)
	}
}

// TestInlineChainsDrain checks the stop of an inline chain whose sink is
// blocked: the source is held in Send, so it reads nothing more; at the
// drain deadline the batch in the sink is given up, Run reports it, and
// every batch emitted is acknowledged, none as delivered.
func TestInlineChainsDrain(t *testing.T) {
	src := &counter{batch: 10}
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.Block()
	b := pipeline.New(pipeline.WithInlineChains(), pipeline.WithDrainTimeout(300*time.Millisecond), pipeline.WithLogger(quiet()))
	s := pipeline.Process(b, "noop", process.Map(func(*ferry.Entry) {}), pipeline.FromSource(b, "counter", src))
	pipeline.To(b, "fake", fake, s)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, p, ctx)
	poll.Until(t, func() bool { st, _ := p.Component("fake"); return st.ItemsIn == 10 }, "the first batch to reach the blocked sink")
	cancel()
	if err := wait(t, done); !errors.Is(err, ferry.ErrUndelivered) {
		t.Fatalf("Run: %v, want ferry.ErrUndelivered", err)
	}
	emitted, acked := src.snapshot()
	if emitted != 10 || len(acked) != 1 {
		t.Fatalf("%d entries emitted, %d batches acknowledged; want the one batch held in Send", emitted, len(acked))
	}
	if err := acked[0]; err == nil || ferry.Settled(err) {
		t.Fatalf("the blocked batch was acknowledged with %v, want an unsettled error", err)
	}
}
