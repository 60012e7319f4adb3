package otlpconv

import (
	"math"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

func TestLabelName(t *testing.T) {
	var n Namer
	for in, want := range map[string]string{
		"service.name": "service_name", "k8s.pod.name": "k8s_pod_name", "http_method": "http_method",
		"1st": "key_1st", "a-b/c": "a_b_c", "___": "", "": "", "_x": "_x",
	} {
		if got := LabelName(in); got != want {
			t.Errorf("LabelName(%q) = %q, want %q", in, got, want)
		}
		if got := n.Name(in); got != want {
			t.Errorf("Namer.Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAttributeName(t *testing.T) {
	for in, want := range map[string]string{"service_name": "service.name", "k8s_namespace_name": "k8s.namespace.name", "app": "app", "host_name": "host_name"} {
		if got := AttributeName(in); got != want {
			t.Errorf("AttributeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValueString(t *testing.T) {
	s := func(v string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
	}
	for _, tc := range []struct {
		v    *commonpb.AnyValue
		want string
	}{
		{nil, ""},
		{s("plain \"text\""), `plain "text"`},
		{&commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -42}}, "-42"},
		{&commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}}, "1.5"},
		{&commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: math.Inf(1)}}, "+Inf"},
		{&commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}, "true"},
		{&commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{1, 2, 3}}}, "AQID"},
		{&commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			s("a\n"), {Value: &commonpb.AnyValue_IntValue{IntValue: 1}}, {Value: &commonpb.AnyValue_DoubleValue{DoubleValue: math.NaN()}}, {},
		}}}}, `["a\n",1,"NaN",null]`},
		{&commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
			{Key: "k", Value: s("v")}, {Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{}}}},
		}}}}, `{"k":"v","n":{}}`},
	} {
		if got := ValueString(tc.v); got != tc.want {
			t.Errorf("ValueString(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
