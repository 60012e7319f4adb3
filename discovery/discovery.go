// Package discovery finds the things to collect from and describes each as a
// target: a label set such as {__address__="10.0.0.5:8080",
// __meta_docker_container_name="/web"}.
//
// A Discoverer sends the full set of its targets every time it changes, the
// way Prometheus service discovery sends target groups. Consumers (relabel
// rules, then sources) reconcile: they start work for new targets and stop it
// for vanished ones.
//
// This package holds the Discoverer contract, Static and Func. Docker
// containers are discovered by discovery/docker, files and file_sd target
// files by discovery/file.
package discovery

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
)

// Discoverer finds targets.
//
// Run sends the complete current set of targets on up: first as soon as it is
// known (an empty set is a valid first answer), then again after every
// change. Every send replaces the previous set entirely. The receiver owns
// each sent slice; the discoverer must not modify it afterwards. A send may
// block; Run must stay responsive to ctx while it does.
//
// Run returns nil when ctx is done. It never closes up. A non-nil error means
// the discoverer could not go on; a pipeline restarts it with backoff and
// keeps the last set it sent meanwhile, unless the error is permanent
// (ferry.IsPermanent). A discoverer whose set can never change may send it
// once and return nil.
type Discoverer interface {
	Run(ctx context.Context, up chan<- []labels.Labels) error
}

// Func adapts a function to the Discoverer interface.
type Func func(ctx context.Context, up chan<- []labels.Labels) error

// Run calls f.
func (f Func) Run(ctx context.Context, up chan<- []labels.Labels) error { return f(ctx, up) }
