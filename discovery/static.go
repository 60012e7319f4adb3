package discovery

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
)

// Static is a Discoverer of a fixed set of targets, like Prometheus's
// static_configs: it sends its targets once and waits for ctx to end.
type Static []labels.Labels

// Run sends the targets and returns nil when ctx is done.
func (s Static) Run(ctx context.Context, up chan<- []labels.Labels) error {
	select {
	case up <- append([]labels.Labels(nil), s...):
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	return nil
}

// Addresses returns a Static discoverer with one target per address, each
// labelled __address__ and the given extra label pairs (name, value, ...).
func Addresses(addrs []string, extra ...string) Static {
	s := make(Static, 0, len(addrs))
	for _, a := range addrs {
		lb := labels.NewBuilder(labels.FromStrings(extra...))
		lb.Set("__address__", a)
		s = append(s, lb.Labels())
	}
	return s
}
