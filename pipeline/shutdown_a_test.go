package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
)

// TestUndeliveredAtDeadline checks what a stop past the drain deadline
// returns: an error a program can test with errors.Is, naming the deadline
// rather than "context canceled", and acknowledgements that say the same.
// Before ferry.ErrUndelivered, Run returned nil here and the batches were
// acknowledged with "context canceled" or "shut down before delivery".
func TestUndeliveredAtDeadline(t *testing.T) {
	src := &counter{batch: 10}
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.Block()
	b := pipeline.New(pipeline.WithBuffer(2), pipeline.WithDrainTimeout(300*time.Millisecond), pipeline.WithLogger(quiet()))
	// Two sinks: one fused into the source's chain, one behind a channel,
	// so that batches are given up both inside Send and in the queue.
	s := pipeline.FromSource(b, "counter", src)
	pipeline.To(b, "blocked", fake, s)
	pipeline.To(b, "other", &sinktest.Sink[ferry.Entry]{}, s)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, p, ctx)
	poll.Until(t, func() bool { st, _ := p.Component("blocked"); return st.QueueLen == st.QueueCap }, "the blocked sink's queue to fill")
	cancel()
	err = wait(t, done)
	if !errors.Is(err, ferry.ErrUndelivered) {
		t.Fatalf("Run: %v, want ferry.ErrUndelivered", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "drain deadline of 300ms passed") || strings.Contains(msg, "context canceled") {
		t.Errorf("Run: %q, want the deadline named and no %q", msg, "context canceled")
	}
	emitted, acked := src.snapshot()
	if len(acked)*10 != emitted {
		t.Fatalf("%d entries emitted, %d batches acknowledged", emitted, len(acked))
	}
	for first, err := range acked {
		if !errors.Is(err, ferry.ErrUndelivered) || ferry.Settled(err) || strings.Contains(err.Error(), "context canceled") {
			t.Errorf("batch %d acknowledged with %v, want an unsettled ferry.ErrUndelivered", first, err)
		}
	}
}

// TestNoUndeliveredWithinDeadline checks that a drain that finishes in time
// returns nil even when a sink acknowledged a batch with an error during it:
// that is a sink's failure, shown in its health, not a stop past the
// deadline.
func TestNoUndeliveredWithinDeadline(t *testing.T) {
	src := &counter{batch: 10}
	var once sync.Once
	stopping := make(chan struct{})
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.SendFunc = func(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
		err := error(nil)
		select {
		case <-stopping:
			once.Do(func() { err = errors.New("peer unavailable") })
		default:
		}
		b.Done(err)
		return nil
	}
	b := pipeline.New(pipeline.WithDrainTimeout(10*time.Second), pipeline.WithLogger(quiet()))
	pipeline.To(b, "fake", fake, pipeline.FromSource(b, "counter", src))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, p, ctx)
	poll.Until(t, func() bool { e, _ := src.snapshot(); return e > 100 }, "100 entries")
	close(stopping)
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestDefaultDrainFitsDockerStop(t *testing.T) {
	if d := pipeline.DefaultDrainTimeout; d <= 0 || d >= 10*time.Second {
		t.Fatalf("DefaultDrainTimeout %v does not fit docker stop's 10s grace period", d)
	}
}

// onlyUndelivered is the function docs/shutdown.md shows: it reports
// whether every error joined in err is ferry.ErrUndelivered.
func onlyUndelivered(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyUndelivered(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, ferry.ErrUndelivered)
}

// TestShutdownDocSnippet checks the snippet of docs/shutdown.md on the
// errors Run returns.
func TestShutdownDocSnippet(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.Block()
	b := pipeline.New(pipeline.WithDrainTimeout(50*time.Millisecond), pipeline.WithLogger(quiet()))
	pipeline.To(b, "stuck", fake, pipeline.FromSource(b, "counter", &counter{batch: 1, limit: 3}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	if !onlyUndelivered(err) {
		t.Fatalf("onlyUndelivered(%v) = false", err)
	}
	if onlyUndelivered(errors.Join(err, errors.New("sink \"x\": close: boom"))) {
		t.Fatal("onlyUndelivered true with a failure joined")
	}
}
