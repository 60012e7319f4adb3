package dockertest_test

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry/internal/dockertest"
)

// Start runs a logger container outside a test (in tests, use Run, which
// skips without an engine and cleans up by itself). The example has no
// checked output: it needs an engine, and printing the lines the container
// is meant to log would pass without one. The lines it prints are those the
// container logs, which Line and IsStderr describe and the dockerlogs
// engine tests read back.
func ExampleStart() {
	s := dockertest.Spec{Lines: 2, Stderr: true}
	c, err := dockertest.NewClient(context.Background())
	if err == nil {
		defer c.Close()
		id, err := dockertest.Start(context.Background(), c, s)
		defer dockertest.Remove(c, id)
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	for i := range s.Lines {
		fmt.Println(dockertest.IsStderr(s, i), dockertest.Line(s, 1, i))
	}
}
