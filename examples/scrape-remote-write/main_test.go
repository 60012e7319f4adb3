package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/peers"
)

// Scrape a real node_exporter and remote-write into a real Prometheus.
func TestNodeExporterToPrometheus(t *testing.T) {
	node := peers.StartNodeExporter(t)
	prom := peers.StartPrometheus(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-targets", node, "-interval", "500ms", "-remote-write.url", prom.WriteURL()}, nil)
	}()
	deadline := time.Now().Add(30 * time.Second)
	ok := func() bool {
		up := prom.Query(t, `up{instance="`+node+`",env="example"}`, time.Now())
		self := prom.Query(t, `ferry_component_items_out_total{job="ferry",component="scrape"}`, time.Now())
		cpu := prom.Query(t, `node_cpu_seconds_total{instance="`+node+`"}`, time.Now())
		return len(up) == 1 && up[0].Float(t) == 1 && len(self) == 1 && len(cpu) > 0
	}
	// Decide before stopping: a stopped scraper writes staleness markers,
	// after which the instant queries above find nothing.
	arrived := ok()
	for !arrived && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		arrived = ok()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !arrived {
		t.Fatal("up, node_exporter series or the program's own metrics did not arrive in Prometheus")
	}
}

func TestSelfToConsole(t *testing.T) {
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := run(ctx, []string{"-interval", "200ms"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `ferry_component_health`) {
		t.Fatalf("output:\n%.2000s", out.String())
	}
}
