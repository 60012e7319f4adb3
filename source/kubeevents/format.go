package kubeevents

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	corev1 "k8s.io/api/core/v1"

	"github.com/ferrydev/ferry"
)

// field is one key and value of a line.
type field struct{ k, v string }

// fields returns what a line says of e, in this order (empty values left
// out): the object (kind, name, its API version and resourceVersion), the
// event's type, reason, action, count and resourceVersion, who reported it
// (reporting controller and instance, source component and host) and its
// message (msg).
func fields(e *corev1.Event) []field {
	var count string
	switch {
	case e.Series != nil:
		count = strconv.Itoa(int(e.Series.Count))
	case e.Count != 0:
		count = strconv.Itoa(int(e.Count))
	}
	all := []field{
		{"kind", e.InvolvedObject.Kind},
		{"name", e.InvolvedObject.Name},
		{"objectAPIversion", e.InvolvedObject.APIVersion},
		{"objectRV", e.InvolvedObject.ResourceVersion},
		{"eventRV", e.ResourceVersion},
		{"type", e.Type},
		{"reason", e.Reason},
		{"action", e.Action},
		{"count", count},
		{"reportingcontroller", e.ReportingController},
		{"reportinginstance", e.ReportingInstance},
		{"sourcecomponent", e.Source.Component},
		{"sourcehost", e.Source.Host},
		{"msg", strings.TrimSpace(e.Message)},
	}
	out := all[:0]
	for _, f := range all {
		if f.v != "" {
			out = append(out, f)
		}
	}
	return out
}

// timestamp is when e last happened: its series' last observation, its
// lastTimestamp, eventTime, firstTimestamp, or its creation.
func timestamp(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// entry returns e as an entry: labels job, namespace (the event's) and
// instance (if set), the line in r's format.
func (r *reader) entry(e *corev1.Event) ferry.Entry {
	job := r.s.Job
	if job == "" {
		job = DefaultJob
	}
	r.lb.Reset(labels.EmptyLabels())
	r.lb.Set("job", job)
	if ns := e.Namespace; ns != "" {
		r.lb.Set("namespace", ns)
	}
	if r.s.Instance != "" {
		r.lb.Set("instance", r.s.Instance)
	}
	return ferry.Entry{Labels: r.lb.Labels(), Timestamp: timestamp(e), Line: format(r.s.Format, fields(e))}
}

// format writes fs as logfmt (key=value, values quoted when they need it)
// or as a JSON object.
func format(f Format, fs []field) string {
	var b strings.Builder
	if f == FormatJSON {
		b.WriteByte('{')
		for i, fl := range fs {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(fl.k)
			v, _ := json.Marshal(fl.v)
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
		return b.String()
	}
	for i, fl := range fs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fl.k)
		b.WriteByte('=')
		if needsQuote(fl.v) {
			b.WriteString(strconv.Quote(fl.v))
		} else {
			b.WriteString(fl.v)
		}
	}
	return b.String()
}

// needsQuote reports whether a logfmt value must be quoted.
func needsQuote(v string) bool {
	if v == "" || !utf8.ValidString(v) {
		return true
	}
	for _, c := range v {
		if c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f {
			return true
		}
	}
	return false
}
