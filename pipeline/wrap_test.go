package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

// endless is a source that emits nothing until ctx is done: only a
// pipeline that stops by itself lets Run return.
type endless struct{}

func (endless) Run(ctx context.Context, _ chan<- ferry.Batch[ferry.Entry]) error {
	<-ctx.Done()
	return nil
}

// wrappedSource hides the Start of the source it wraps, as the example
// agent's first wrapper did.
type wrappedSource struct {
	source.Source[ferry.Entry]
}

// noopStartSource has a Start of its own that does not forward.
type noopStartSource struct {
	source.Source[ferry.Entry]
}

func (noopStartSource) Start(context.Context, ferry.Reporter) error { return nil }

// needsStart is a sink that refuses Send before Start, as every sink with
// resources does.
type needsStart struct {
	sinktest.Sink[ferry.Entry]
	started bool
}

func (s *needsStart) Start(context.Context, ferry.Reporter) error { s.started = true; return nil }

func (s *needsStart) Send(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
	if !s.started {
		err := errors.Join(errors.New("needsStart: Send before Start"), ferry.ErrNotStarted)
		b.Done(err)
		return err
	}
	return s.Sink.Send(ctx, b)
}

type wrappedSink struct {
	sink.Sink[ferry.Entry]
}

// runUnstarted runs a pipeline that holds a component never started
// behind a wrapper, next to a source that never ends: Run must return by
// itself with an error naming the component and the wrapper.
func runUnstarted(t *testing.T, build func(b *pipeline.Builder)) error {
	t.Helper()
	b := pipeline.New(pipeline.WithLogger(quiet()), pipeline.WithDrainTimeout(time.Second))
	build(b)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, ferry.ErrNotStarted) {
			t.Fatalf("Run: %v, want an error wrapping ferry.ErrNotStarted", err)
		}
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the pipeline did not stop")
		return nil
	}
}

func wantMention(t *testing.T, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not mention %q:\n%v", p, err)
		}
	}
}

// TestWrapperWithoutStart: a wrapper that does not forward Start makes
// the wrapped component refuse to run; the pipeline says which component,
// which wrapper, and what to do, and stops rather than restarting it.
func TestWrapperWithoutStart(t *testing.T) {
	t.Run("source", func(t *testing.T) {
		err := runUnstarted(t, func(b *pipeline.Builder) {
			r := &source.Reader{R: strings.NewReader("a line\n")}
			out := &sinktest.Sink[ferry.Entry]{}
			pipeline.To(b, "out", out, pipeline.FromSource(b, "stdin", &wrappedSource{r}))
			pipeline.To(b, "out2", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "idle", endless{}))
		})
		wantMention(t, err, `source "stdin"`, "*pipeline_test.wrappedSource does not implement ferry.Starter", "call the wrapped component's Start")
	})
	t.Run("source with a Start that does not forward", func(t *testing.T) {
		err := runUnstarted(t, func(b *pipeline.Builder) {
			r := &source.Reader{R: strings.NewReader("a line\n")}
			pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "stdin", noopStartSource{r}))
			pipeline.To(b, "out2", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "idle", endless{}))
		})
		wantMention(t, err, `source "stdin"`, "the pipeline started pipeline_test.noopStartSource, whose Start did not start what it wraps")
	})
	t.Run("sink", func(t *testing.T) {
		err := runUnstarted(t, func(b *pipeline.Builder) {
			in := pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 3)})
			pipeline.To(b, "out", &wrappedSink{&needsStart{}}, in)
			pipeline.To(b, "out2", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "idle", endless{}))
		})
		wantMention(t, err, `sink "out"`, "*pipeline_test.wrappedSink does not implement ferry.Starter")
	})
	t.Run("processor", func(t *testing.T) {
		err := runUnstarted(t, func(b *pipeline.Builder) {
			stages := stage.MustNew(&stage.StaticLabels{Values: map[string]string{"a": "b"}})
			in := pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 3)})
			in = pipeline.Process(b, "stages", process.Func[ferry.Entry](stages.Process), in)
			pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, in)
			pipeline.To(b, "out2", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "idle", endless{}))
		})
		wantMention(t, err, `processor "stages"`, "process.Func[github.com/ferrydev/ferry.Entry] does not implement ferry.Starter")
	})
}
