package kubeevents_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/kubeevents"
)

// A Source reads the events of the cluster its kubeconfig names (here a
// stand-in API server holding one event) and sends each as an entry.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") == "true" {
			<-r.Context().Done() // nothing new
			return
		}
		fmt.Fprint(w, `{"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"12"},"items":[
			{"metadata":{"name":"web.1","namespace":"default","resourceVersion":"11"},
			 "involvedObject":{"kind":"Pod","name":"web"},"reason":"BackOff","type":"Warning","count":3,
			 "message":"Back-off restarting failed container","lastTimestamp":"2026-12-05T08:00:00Z"}]}`)
	}))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "kubeevents")
	defer os.RemoveAll(dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+srv.URL+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)

	s := &kubeevents.Source{KubeConfig: kubeconfig}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx, nil); err != nil {
		fmt.Println(err)
		return
	}
	out := make(chan ferry.Batch[ferry.Entry])
	done := make(chan error)
	go func() { done <- s.Run(ctx, out) }()
	b := <-out
	for _, e := range b.Items {
		fmt.Println(e.Timestamp.UTC().Format("15:04:05"), e.Labels)
		fmt.Println(e.Line)
	}
	b.Done(nil)
	cancel()
	<-done
	s.Close(context.Background())
	// Output:
	// 08:00:00 {job="loki.source.kubernetes_events", namespace="default"}
	// kind=Pod name=web eventRV=11 type=Warning reason=BackOff count=3 msg="Back-off restarting failed container"
}
