package otlpconv_test

import (
	"fmt"

	"github.com/ferrydev/ferry/internal/otlpconv"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

func Example() {
	fmt.Println(otlpconv.LabelName("service.name"), otlpconv.AttributeName("service_name"))
	v := &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
		{Key: "code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 200}}},
	}}}}
	fmt.Println(otlpconv.ValueString(v))
	// Output:
	// service_name service.name
	// {"code":200}
}
