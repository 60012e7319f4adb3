// Package otlpconv holds the mapping between OpenTelemetry attributes and
// Prometheus/Loki labels that source/otlp and sink/otlp share: attribute
// names to label names (Prometheus's otlptranslator rules, as Loki and
// Prometheus apply them: "service.name" becomes "service_name"), the
// reverse for the attributes Ferry promotes, and attribute values to the
// strings a label or structured metadata value holds.
package otlpconv

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/otlptranslator"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

// DefaultResourceLabels are the resource attributes that Loki 3 promotes
// to stream labels by default, as Loki 3.0 documents them (its distributor's
// default_resource_attributes_as_index_labels); every other attribute is
// structured metadata.
var DefaultResourceLabels = []string{
	"cloud.availability_zone",
	"cloud.region",
	"container.name",
	"deployment.environment",
	"k8s.cluster.name",
	"k8s.container.name",
	"k8s.cronjob.name",
	"k8s.daemonset.name",
	"k8s.deployment.name",
	"k8s.job.name",
	"k8s.namespace.name",
	"k8s.pod.name",
	"k8s.replicaset.name",
	"k8s.statefulset.name",
	"service.instance.id",
	"service.name",
	"service.namespace",
}

var labelNamer = otlptranslator.LabelNamer{}

// LabelName returns the Prometheus label name of an attribute name, by
// otlptranslator's rules: every character other than [a-zA-Z0-9_] becomes
// "_", a leading digit gets the prefix "key_". It returns "" for names that
// have no valid label name (empty, only underscores).
func LabelName(attr string) string {
	if validLabelName(attr) {
		return attr
	}
	n, err := labelNamer.Build(attr)
	if err != nil {
		return ""
	}
	return n
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	underscores := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			underscores = false
		case c >= '0' && c <= '9' && i > 0:
			underscores = false
		default:
			return false
		}
	}
	return !underscores
}

// Namer caches LabelName for the attribute names one decoder meets, so that
// a name seen before costs a map lookup and no allocation. It is not safe
// for concurrent use.
type Namer struct {
	m map[string]string
}

// maxNamerEntries bounds a Namer's cache against clients that send unbounded
// attribute names.
const maxNamerEntries = 4096

// Name returns LabelName(attr), cached.
func (n *Namer) Name(attr string) string {
	if validLabelName(attr) {
		return attr
	}
	if v, ok := n.m[attr]; ok {
		return v
	}
	v := LabelName(attr)
	if n.m == nil {
		n.m = make(map[string]string)
	}
	if len(n.m) >= maxNamerEntries {
		clear(n.m)
	}
	n.m[attr] = v
	return v
}

var (
	reverseOnce sync.Once
	reverse     map[string]string
)

// AttributeName returns the attribute name a label stands for: the dotted
// name of one of DefaultResourceLabels when label is its label form
// ("service_name" gives "service.name"), label itself otherwise. It is the
// inverse of LabelName on the promoted attributes, so that entries received
// over OTLP keep their resource attributes when sent on over OTLP.
func AttributeName(label string) string {
	reverseOnce.Do(func() {
		reverse = make(map[string]string, len(DefaultResourceLabels))
		for _, a := range DefaultResourceLabels {
			reverse[LabelName(a)] = a
		}
	})
	if a, ok := reverse[label]; ok {
		return a
	}
	return label
}

// AppendValue appends the string form of v to dst, as the Collector's
// pcommon.Value.AsString gives it: strings as they are, integers in
// decimal, doubles in the shortest form that reads back the same, booleans
// as "true" or "false", bytes in standard base64, arrays and key/value
// lists as JSON. A nil or empty value appends nothing.
func AppendValue(dst []byte, v *commonpb.AnyValue) []byte {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return append(dst, x.StringValue...)
	case *commonpb.AnyValue_BoolValue:
		return strconv.AppendBool(dst, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.AppendInt(dst, x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return appendDouble(dst, x.DoubleValue)
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.AppendEncode(dst, x.BytesValue)
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		return appendJSON(dst, v, 0)
	}
	return dst
}

// ValueString returns the string form of v (see AppendValue).
func ValueString(v *commonpb.AnyValue) string {
	if s, ok := v.GetValue().(*commonpb.AnyValue_StringValue); ok {
		return s.StringValue
	}
	return string(AppendValue(nil, v))
}

func appendDouble(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-Inf"...)
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// maxDepth bounds the nesting of values rendered as JSON; deeper values are
// rendered as null.
const maxDepth = 64

// appendJSON appends v as JSON: strings quoted, numbers and booleans bare,
// bytes as base64 strings, arrays and lists as JSON arrays and objects.
func appendJSON(dst []byte, v *commonpb.AnyValue, depth int) []byte {
	if depth > maxDepth {
		return append(dst, "null"...)
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return AppendJSONString(dst, x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return strconv.AppendBool(dst, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.AppendInt(dst, x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		if math.IsInf(x.DoubleValue, 0) || math.IsNaN(x.DoubleValue) {
			return AppendJSONString(dst, string(appendDouble(nil, x.DoubleValue)))
		}
		return strconv.AppendFloat(dst, x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, x.BytesValue)
		return append(dst, '"')
	case *commonpb.AnyValue_ArrayValue:
		dst = append(dst, '[')
		for i, e := range x.ArrayValue.GetValues() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, e, depth+1)
		}
		return append(dst, ']')
	case *commonpb.AnyValue_KvlistValue:
		dst = append(dst, '{')
		for i, kv := range x.KvlistValue.GetValues() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, kv.GetKey())
			dst = append(dst, ':')
			dst = appendJSON(dst, kv.GetValue(), depth+1)
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}

// appendQuoted appends s as a JSON string.
func AppendJSONString(dst []byte, s string) []byte {
	simple := utf8.ValidString(s)
	if simple {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
				simple = false
				break
			}
		}
	}
	if simple {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, _ := json.Marshal(s)
	return append(dst, b...)
}
