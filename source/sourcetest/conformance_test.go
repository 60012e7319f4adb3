package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// fakeT records failures; Fatalf ends the goroutine as testing.T's does.
type fakeT struct {
	mu   sync.Mutex
	errs []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

// failures runs check on src with a fake T and returns what it reported.
func failures[T any](h Harness[T], src source.Source[T]) string {
	f := &fakeT{}
	done := make(chan struct{})
	go func() { defer close(done); check(f, h, src) }()
	<-done
	return strings.Join(f.errs, "\n")
}

// endless emits one-item batches until ctx is done. With late set, it
// leaves its last send to a goroutine that does it after Run returned,
// the defect the harness must catch.
type endless struct {
	late bool
}

func (e *endless) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	for i := 0; ; i++ {
		b := ferry.NewBatch([]ferry.Entry{{Line: fmt.Sprint(i)}}, nil)
		select {
		case out <- b:
		case <-ctx.Done():
			if e.late {
				// The defect: a send after Run returned, once the
				// harness has emptied the channel.
				go func() {
					for len(out) > 0 {
						runtime.Gosched()
					}
					out <- b
				}()
			}
			return nil
		}
	}
}

// unstarted is a source with a Start that Run does not check.
type unstarted struct{ endless }

func (*unstarted) Start(context.Context, ferry.Reporter) error { return nil }

func TestHarnessPassesGoodSources(t *testing.T) {
	if got := failures(Harness[ferry.Entry]{Want: 5}, &endless{}); got != "" {
		t.Errorf("endless: %s", got)
	}
	if got := failures(Harness[ferry.Entry]{Want: 5}, source.Source[ferry.Entry](&source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 5)})); got != "" {
		t.Errorf("slice: %s", got)
	}
	Run(t, Harness[ferry.Entry]{New: func(*testing.T) source.Source[ferry.Entry] { return &endless{} }, Want: 3})
}

func TestHarnessCatchesSendAfterRun(t *testing.T) {
	got := failures(Harness[ferry.Entry]{Want: 5}, &endless{late: true})
	if !strings.Contains(got, "after its Run returned") {
		t.Errorf("late send not reported; failures: %q", got)
	}
}

// refusing is a source whose Run refuses before Start, but with an error
// that does not say so in a way a pipeline can test.
type refusing struct {
	endless
	started bool
}

func (r *refusing) Start(context.Context, ferry.Reporter) error { r.started = true; return nil }

func (r *refusing) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if !r.started {
		return errors.New("refusing: call Start")
	}
	return r.endless.Run(ctx, out)
}

func TestHarnessCatchesRunWithoutStart(t *testing.T) {
	got := failures(Harness[ferry.Entry]{Want: 1, Timeout: 200 * time.Millisecond}, &unstarted{})
	if !strings.Contains(got, "Run without Start returned nil") {
		t.Errorf("Run without Start not reported; failures: %q", got)
	}
	got = failures(Harness[ferry.Entry]{Want: 1, Timeout: 200 * time.Millisecond}, &refusing{})
	if !strings.Contains(got, "want an error wrapping ferry.ErrNotStarted") {
		t.Errorf("an error not wrapping ferry.ErrNotStarted not reported; failures: %q", got)
	}
}

func TestTargetedForwardsLifecycle(t *testing.T) {
	var ts source.TargetSource[ferry.Entry] = lifecycleTS{}
	s := Targeted(ts, []labels.Labels{labels.FromStrings("a", "b")})
	if _, ok := s.(ferry.Starter); !ok {
		t.Error("Targeted hides Start")
	}
	if _, ok := s.(source.Closer); !ok {
		t.Error("Targeted hides Close")
	}
}

type lifecycleTS struct{}

func (lifecycleTS) Run(context.Context, <-chan []labels.Labels, chan<- ferry.Batch[ferry.Entry]) error {
	return nil
}
func (lifecycleTS) Start(context.Context, ferry.Reporter) error { return nil }
func (lifecycleTS) Close(context.Context) error                 { return nil }

// reopening refuses Run before Start as it should, but Close does not
// end it: Start and Run still work afterwards, the defect the lifecycle
// part of the harness must catch.
type reopening struct {
	endless
	started bool
}

func (r *reopening) Start(context.Context, ferry.Reporter) error { r.started = true; return nil }
func (r *reopening) Close(context.Context) error                 { return nil }

func (r *reopening) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if !r.started {
		return fmt.Errorf("reopening: %w", ferry.ErrNotStarted)
	}
	return r.endless.Run(ctx, out)
}

func TestHarnessCatchesUseAfterClose(t *testing.T) {
	got := failures(Harness[ferry.Entry]{Want: 1, Timeout: 200 * time.Millisecond}, &reopening{})
	for _, want := range []string{"Start after Close returned <nil>", "Run after Close returned <nil>", "Run after Close sent a batch"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q not reported; failures: %q", want, got)
		}
	}
}
