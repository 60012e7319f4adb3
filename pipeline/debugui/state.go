package debugui

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/ferrydev/ferry/internal/redact"
)

// rowStateAttrs is how many of a component's state attributes its row of
// the index page shows; its own page shows all.
const rowStateAttrs = 6

// stateView is one attribute of a component's state (pipeline.StateReporter)
// as the page shows it: Value for reading, Exact for the tooltip.
type stateView struct{ Key, Value, Exact string }

// stateOf returns the state of the named component, nil if it has none.
func (h *debugHandler) stateOf(name string) []slog.Attr {
	attrs, err := h.p.State(name)
	if err != nil {
		return nil
	}
	return attrs
}

// flatten calls f with every attribute of attrs, groups resolved into
// their attributes under "group.key".
func flatten(prefix string, attrs []slog.Attr, f func(key string, v slog.Value)) {
	for _, a := range attrs {
		v := a.Value.Resolve()
		key := a.Key
		if prefix != "" {
			key = prefix + "." + key
		}
		if v.Kind() == slog.KindGroup {
			flatten(key, v.Group(), f)
			continue
		}
		f(key, v)
	}
}

// stateViews formats attrs for a page, redacting strings.
func stateViews(attrs []slog.Attr) []stateView {
	var out []stateView
	flatten("", attrs, func(key string, v slog.Value) {
		shown, exact := formatState(key, v)
		out = append(out, stateView{Key: redact.String(key), Value: shown, Exact: exact})
	})
	return out
}

// formatState returns v as the page shows it and, for numbers shown
// rounded, exactly. Integers under a key that is "bytes" or ends in
// "_bytes" are shown in KiB, MiB and so on.
func formatState(key string, v slog.Value) (shown, exact string) {
	switch v.Kind() {
	case slog.KindInt64:
		n := v.Int64()
		exact = strconv.FormatInt(n, 10)
		if n >= 0 && isBytesKey(key) {
			return humanBytes(uint64(n)), exact
		}
		if n >= 0 {
			return humanCount(uint64(n)), exact
		}
		return exact, exact
	case slog.KindUint64:
		n := v.Uint64()
		exact = strconv.FormatUint(n, 10)
		if isBytesKey(key) {
			return humanBytes(n), exact
		}
		return humanCount(n), exact
	case slog.KindFloat64:
		f := v.Float64()
		exact = strconv.FormatFloat(f, 'g', -1, 64)
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			return exact, exact
		case math.Abs(f) >= 10_000 && math.Abs(f) < 1e18:
			return humanCount(uint64(math.Abs(f))), exact
		}
		return strconv.FormatFloat(f, 'f', 1, 64), exact
	case slog.KindDuration:
		return humanDuration(v.Duration()), v.Duration().String()
	case slog.KindTime:
		return stamp(v.Time()), stamp(v.Time())
	case slog.KindBool:
		s := strconv.FormatBool(v.Bool())
		return s, s
	}
	s := redact.String(v.String())
	return s, s
}

func isBytesKey(k string) bool {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		k = k[i+1:]
	}
	return k == "bytes" || strings.HasSuffix(k, "_bytes")
}

// stateJSON returns attrs as a JSON object, groups flattened into
// "group.key", durations as Go durations ("1.5s"), strings redacted.
func stateJSON(attrs []slog.Attr) map[string]any {
	if attrs == nil {
		return nil
	}
	out := make(map[string]any, len(attrs))
	flatten("", attrs, func(key string, v slog.Value) {
		var x any
		switch v.Kind() {
		case slog.KindInt64:
			x = v.Int64()
		case slog.KindUint64:
			x = v.Uint64()
		case slog.KindFloat64:
			f := v.Float64()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				x = fmt.Sprint(f) // JSON has no NaN or infinity
			} else {
				x = f
			}
		case slog.KindBool:
			x = v.Bool()
		case slog.KindDuration:
			x = v.Duration().String()
		case slog.KindTime:
			x = v.Time()
		default:
			x = redact.String(v.String())
		}
		out[redact.String(key)] = x
	})
	return out
}

// rowState is the short form of a component's state in its row of the
// index page: its first attributes.
func rowState(attrs []slog.Attr) []stateView {
	v := stateViews(attrs)
	return v[:min(len(v), rowStateAttrs)]
}
