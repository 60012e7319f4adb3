// Package relabel applies Prometheus relabeling rules to targets, log
// entries and samples.
//
// Rules are the Prometheus ones (github.com/prometheus/prometheus/model/relabel),
// written in Go with the helpers below or as plain relabel.Config values, and
// validated once, by New. Applying them reuses a labels.Builder per caller
// and caches results per distinct input label set, so that the steady state
// of a stream allocates nothing per item.
package relabel

import (
	"errors"
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	prom "github.com/prometheus/prometheus/model/relabel"
)

// Rule is one relabeling step. Build it with Replace, Copy, Set, Keep, Drop,
// LabelMap, LabelDrop, LabelKeep, HashMod, Lowercase, Uppercase, KeepEqual,
// DropEqual, or FromConfig. A Rule whose regular expression does not
// compile carries the error to New.
type Rule struct {
	cfg prom.Config
	err error
}

// FromConfig accepts a plain Prometheus relabel.Config. Fields left at their
// Go zero value take the Prometheus defaults, as omitted YAML fields would:
// Action "replace", Separator ";", Regex "(.*)" and, for replace and
// labelmap, Replacement "$1". To replace with an empty string (which
// deletes the target label) use Replace. An unset NameValidationScheme means
// UTF-8 names, as in Prometheus 3.
func FromConfig(c prom.Config) Rule {
	if c.Action == "" {
		c.Action = prom.Replace
	}
	if c.Separator == "" {
		c.Separator = prom.DefaultRelabelConfig.Separator
	}
	if c.Regex.Regexp == nil {
		c.Regex = prom.DefaultRelabelConfig.Regex
	}
	if c.Replacement == "" && (c.Action == prom.Replace || c.Action == prom.LabelMap) {
		c.Replacement = prom.DefaultRelabelConfig.Replacement
	}
	return Rule{cfg: c}
}

func rule(action prom.Action, regex string, source []string, target, replacement string) Rule {
	c := prom.DefaultRelabelConfig
	c.Action = action
	c.TargetLabel = target
	c.Replacement = replacement
	if source != nil {
		c.SourceLabels = make(model.LabelNames, len(source))
		for i, s := range source {
			c.SourceLabels[i] = model.LabelName(s)
		}
	}
	var err error
	if regex != "" || action == prom.Replace {
		c.Regex, err = prom.NewRegexp(regex)
		if err != nil {
			err = fmt.Errorf("%s rule: regex %q: %w", action, regex, err)
		}
	}
	return Rule{cfg: c, err: err}
}

// Replace sets target to replacement when regex matches the values of the
// source labels joined with ";". $1, ${name} and so on in target and
// replacement refer to the regex's groups. An empty result deletes target.
func Replace(source []string, regex, target, replacement string) Rule {
	return rule(prom.Replace, regex, source, target, replacement)
}

// Copy sets target to the value of source, as a rule with only
// source_labels and target_label does in Prometheus. An empty source value
// deletes target.
func Copy(source, target string) Rule {
	return rule(prom.Replace, "(.*)", []string{source}, target, "$1")
}

// Set sets target to the fixed value; an empty value deletes it.
func Set(target, value string) Rule {
	return Rule{cfg: func() prom.Config {
		c := prom.DefaultRelabelConfig
		c.TargetLabel, c.Replacement = target, value
		return c
	}()}
}

// Keep drops the item unless regex matches the joined source values.
func Keep(source []string, regex string) Rule { return rule(prom.Keep, regex, source, "", "$1") }

// Drop drops the item if regex matches the joined source values.
func Drop(source []string, regex string) Rule { return rule(prom.Drop, regex, source, "", "$1") }

// LabelMap copies every label whose name matches regex to the name
// replacement (with $1 etc. expanded); the original is kept.
func LabelMap(regex, replacement string) Rule {
	return rule(prom.LabelMap, regex, nil, "", replacement)
}

// LabelDrop removes every label whose name matches regex.
func LabelDrop(regex string) Rule { return rule(prom.LabelDrop, regex, nil, "", "$1") }

// LabelKeep removes every label whose name does not match regex.
func LabelKeep(regex string) Rule { return rule(prom.LabelKeep, regex, nil, "", "$1") }

// HashMod sets target to the hash of the joined source values modulo mod.
func HashMod(source []string, mod uint64, target string) Rule {
	r := rule(prom.HashMod, "", source, target, "$1")
	r.cfg.Modulus = mod
	return r
}

// Lowercase sets target to the joined source values in lower case.
func Lowercase(source []string, target string) Rule {
	return rule(prom.Lowercase, "", source, target, "$1")
}

// Uppercase sets target to the joined source values in upper case.
func Uppercase(source []string, target string) Rule {
	return rule(prom.Uppercase, "", source, target, "$1")
}

// KeepEqual drops the item unless the joined source values equal target's value.
func KeepEqual(source []string, target string) Rule {
	return rule(prom.KeepEqual, "", source, target, "$1")
}

// DropEqual drops the item if the joined source values equal target's value.
func DropEqual(source []string, target string) Rule {
	return rule(prom.DropEqual, "", source, target, "$1")
}

// Rules is a validated, ordered list of rules. It is immutable and safe for
// concurrent use. The nil *Rules keeps everything unchanged.
type Rules struct {
	cfgs []*prom.Config
}

// New validates rules and returns them ready to apply. The error lists every
// invalid rule with its position.
func New(rules ...Rule) (*Rules, error) {
	r := &Rules{cfgs: make([]*prom.Config, 0, len(rules))}
	var errs []error
	for i, rl := range rules {
		if rl.err != nil {
			errs = append(errs, fmt.Errorf("relabel rule %d: %w", i, rl.err))
			continue
		}
		c := rl.cfg
		if !knownAction(c.Action) {
			errs = append(errs, fmt.Errorf("relabel rule %d: unknown action %q", i, c.Action))
			continue
		}
		if err := c.Validate(model.UTF8Validation); err != nil {
			errs = append(errs, fmt.Errorf("relabel rule %d (%s): %w", i, c.Action, err))
			continue
		}
		r.cfgs = append(r.cfgs, &c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func knownAction(a prom.Action) bool {
	switch a {
	case prom.Replace, prom.Keep, prom.Drop, prom.KeepEqual, prom.DropEqual, prom.HashMod,
		prom.LabelMap, prom.LabelDrop, prom.LabelKeep, prom.Lowercase, prom.Uppercase:
		return true
	}
	return false
}

// MustNew is New for rules known to be valid; it panics on an error. Use it
// for package-level rules in tests and examples only.
func MustNew(rules ...Rule) *Rules {
	r, err := New(rules...)
	if err != nil {
		panic(err)
	}
	return r
}

// Len returns the number of rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.cfgs)
}

// Configs returns the validated Prometheus configs, for callers that drive
// relabel.ProcessBuilder themselves. The configs must not be modified.
func (r *Rules) Configs() []*prom.Config {
	if r == nil {
		return nil
	}
	return r.cfgs
}

// ProcessBuilder applies the rules to lb in place and reports whether the
// item is kept. This is the allocation-free primitive: Reset one builder per
// item and reuse it.
func (r *Rules) ProcessBuilder(lb *labels.Builder) bool {
	if r == nil {
		return true
	}
	return prom.ProcessBuilder(lb, r.cfgs...)
}

// Apply returns the relabeled copy of ls and whether it is kept. It
// allocates; hot paths use ProcessBuilder or a Processor.
func (r *Rules) Apply(ls labels.Labels) (labels.Labels, bool) {
	if r.Len() == 0 {
		return ls, true
	}
	lb := labels.NewBuilder(ls)
	if !r.ProcessBuilder(lb) {
		return labels.EmptyLabels(), false
	}
	return lb.Labels(), true
}

// Targets applies the rules to every target and returns those kept, in a
// new slice. Targets that end up without labels are dropped too.
func (r *Rules) Targets(targets []labels.Labels) []labels.Labels {
	out := make([]labels.Labels, 0, len(targets))
	lb := labels.NewBuilder(labels.EmptyLabels())
	for _, t := range targets {
		lb.Reset(t)
		if !r.ProcessBuilder(lb) {
			continue
		}
		if ls := lb.Labels(); !ls.IsEmpty() {
			out = append(out, ls)
		}
	}
	return out
}
