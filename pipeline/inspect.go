package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/redact"
	"github.com/ferrydev/ferry/source"
)

// This file holds the read-only accessors that views of a running pipeline
// (the debug page of package debugui, a program's own health checks) use,
// besides Components, Component and Tap. None of them touches the data
// path.

// Ready reports whether the pipeline is ready: nil once Run has been called
// and while no component is failing, and otherwise an error that says why
// (not started, or which components fail and with what, redacted). Degraded
// and unknown components do not make a pipeline unready: they still work,
// or have not had anything to do yet. Ready does not change when Run
// returns: a program that keeps serving afterwards knows that itself.
// The /-/ready endpoint of debugui.Handler answers with it.
func (p *Pipeline) Ready() error {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		return errors.New("pipeline not started")
	}
	var failing []string
	for _, n := range p.nodes {
		s := n.c.status()
		if s.Health == ferry.Failing {
			msg := fmt.Sprintf("%s %q is failing", s.Kind, s.Name)
			if s.LastError != "" {
				msg += ": " + shorten(redact.String(s.LastError), 200)
			}
			failing = append(failing, msg)
		}
	}
	if len(failing) > 0 {
		return errors.New(strings.Join(failing, "; "))
	}
	return nil
}

// Positions returns the read positions of the named source, if it reports
// them (source.PositionReporter), by key. The values come from outside the
// program (file names, container IDs): pass them through a redactor before
// showing them. It returns an error for an unknown name or a component that
// does not report positions.
func (p *Pipeline) Positions(name string) (map[string]string, error) {
	for _, n := range p.nodes {
		if n.c.name != name {
			continue
		}
		pr, ok := n.value.(source.PositionReporter)
		if !ok {
			return nil, errors.New("pipeline: component does not report positions")
		}
		return pr.Positions(), nil
	}
	return nil, fmt.Errorf("pipeline: no component %q", name)
}

// State returns the state of the named component, if it reports one
// (StateReporter). It returns an error for an unknown name or a component
// that does not report its state. Unlike Positions it may be called before
// Run, while components start, and after Run returned.
func (p *Pipeline) State(name string) ([]slog.Attr, error) {
	for _, n := range p.nodes {
		if n.c.name != name {
			continue
		}
		sr, ok := n.value.(StateReporter)
		if !ok {
			return nil, errors.New("pipeline: component does not report its state")
		}
		return sr.State(), nil
	}
	return nil, fmt.Errorf("pipeline: no component %q", name)
}

// shorten cuts s to at most n runes, marking the cut with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
