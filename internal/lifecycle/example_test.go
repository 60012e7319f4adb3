package lifecycle_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/lifecycle"
)

var (
	errNotStarted = fmt.Errorf("counter: Send before Start: %w", ferry.ErrNotStarted)
	errClosed     = fmt.Errorf("counter: %w", ferry.ErrClosed)
)

// counter is a sink that counts entries, with the lifecycle of every
// component.
type counter struct {
	life lifecycle.State
	rep  ferry.Reporter // set by Start
	n    int
}

func (c *counter) Start(_ context.Context, r ferry.Reporter) error {
	return c.life.Start(errClosed, func() error {
		c.rep = r
		return nil
	})
}

func (c *counter) Send(_ context.Context, b ferry.Batch[ferry.Entry]) error {
	if err := c.life.Err(errNotStarted, errClosed); err != nil {
		b.Done(err)
		return err
	}
	c.n += len(b.Items)
	b.Done(nil)
	return nil
}

func (c *counter) Close(context.Context) error {
	return c.life.Close(func(started bool) error {
		if started {
			c.rep.Logger().Info("closing")
		}
		return nil
	})
}

func Example() {
	ctx := context.Background()
	c := &counter{}
	b := ferry.Batch[ferry.Entry]{Items: make([]ferry.Entry, 3)}
	fmt.Println(errors.Is(c.Send(ctx, b), ferry.ErrNotStarted))
	c.Start(ctx, ferry.NopReporter())
	fmt.Println(c.Send(ctx, b), c.n)
	c.Close(ctx)
	fmt.Println(errors.Is(c.Send(ctx, b), ferry.ErrClosed))
	// Output:
	// true
	// <nil> 3
	// true
}
