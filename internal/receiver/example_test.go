package receiver_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/receiver"
)

// A handler that answers each push for what happened to its data.
func Example() {
	var o receiver.Outlet[string]
	o.Open("example", ferry.NopReporter()) // in the source's Start
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := o.Push(req.Context(), []string{"a line"}, receiver.PushOptions{}); err != nil {
			receiver.WriteError(w, err, time.Second)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	push := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
		return w
	}

	out := make(chan ferry.Batch[string], 1)
	o.Attach(out) // in the source's Run, as o.Run(ctx, out) does
	fmt.Println(push().Code, (<-out).Items)
	o.Detach() // Run returns
	w := push()
	fmt.Println(w.Code, w.Header().Get("Retry-After"))
	// Output:
	// 204 [a line]
	// 503 1
}
