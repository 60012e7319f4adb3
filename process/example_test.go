package process_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/process"
)

func ExampleFilter() {
	noHealthChecks := process.Filter(func(e *ferry.Entry) bool { return !strings.Contains(e.Line, "/healthz") })
	b := ferry.NewBatch([]ferry.Entry{{Line: "GET /healthz"}, {Line: "GET /api"}}, func(err error) {
		fmt.Println("acknowledged:", err)
	})
	out, _ := noHealthChecks.Process(context.Background(), b)
	for _, e := range out.Items {
		fmt.Println(e.Line)
	}
	out.Done(nil)
	// Output:
	// GET /api
	// acknowledged: <nil>
}
