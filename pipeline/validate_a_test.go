package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// invalid wraps a component with a Validate that fails (or panics).
type invalidSource struct {
	source.Slice[ferry.Entry]
}

func (*invalidSource) Validate() error { return errors.New("source config bad") }

type invalidTargetSource struct{ targetEcho }

func (*invalidTargetSource) Validate() error { return errors.New("target source config bad") }

type invalidProcessor struct{}

func (invalidProcessor) Process(_ context.Context, b ferry.Batch[ferry.Entry]) (ferry.Batch[ferry.Entry], error) {
	return b, nil
}
func (invalidProcessor) Validate() error { return errors.New("processor config bad") }

type invalidSink struct{ sinktest.Sink[ferry.Entry] }

func (*invalidSink) Validate() error { return errors.New("sink config bad") }

type panickingSink struct{ sinktest.Sink[ferry.Entry] }

func (*panickingSink) Validate() error { panic("validate exploded") }

type invalidDiscoverer struct{}

func (invalidDiscoverer) Run(ctx context.Context, _ chan<- []labels.Labels) error {
	<-ctx.Done()
	return nil
}
func (invalidDiscoverer) Validate() error { return errors.New("discoverer config bad") }

// TestBuildValidatesEveryComponent checks that Build calls Validate on every
// kind of component, those the pipeline makes itself included (the relabel
// steps of Relabel and RelabelTargets), reports them all at once, and turns
// a panicking Validate into an error.
func TestBuildValidatesEveryComponent(t *testing.T) {
	badRule := []relabel.Rule{relabel.Replace([]string{"a"}, "(", "x", "$1")}
	b := pipeline.New()
	logs := pipeline.FromSource(b, "src", &invalidSource{})
	targets := pipeline.Discover(b, "disc", invalidDiscoverer{})
	targets = pipeline.RelabelTargets(b, "tr", badRule, targets)
	tlogs := pipeline.FromTargets(b, "tsrc", &invalidTargetSource{}, targets)
	logs = pipeline.Process(b, "proc", invalidProcessor{}, logs, tlogs)
	logs = pipeline.Relabel(b, "rel", badRule, logs)
	logs = pipeline.Process(b, "map", process.Map(func(*ferry.Entry) {}), logs)
	pipeline.To(b, "sink", &invalidSink{}, logs)
	pipeline.To(b, "panics", &panickingSink{}, logs)
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build accepted invalid components")
	}
	for _, want := range []string{
		`source "src": source config bad`,
		`discoverer "disc": discoverer config bad`,
		`relabel "tr": relabel rule 0`,
		`source "tsrc": target source config bad`,
		`processor "proc": processor config bad`,
		`processor "rel": relabel rule 0`,
		`sink "sink": sink config bad`,
		`sink "panics": panics: panic: validate exploded`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
