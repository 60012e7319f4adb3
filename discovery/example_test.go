package discovery_test

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry/discovery"
	"github.com/prometheus/prometheus/model/labels"
)

func ExampleAddresses() {
	d := discovery.Addresses([]string{"localhost:9100", "localhost:9090"}, "job", "node")
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan []labels.Labels)
	go d.Run(ctx, up)
	for _, t := range <-up {
		fmt.Println(t)
	}
	cancel()
	// Output:
	// {__address__="localhost:9100", job="node"}
	// {__address__="localhost:9090", job="node"}
}
