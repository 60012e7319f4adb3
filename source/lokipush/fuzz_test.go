package lokipush

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/prometheus/model/labels"
)

// FuzzDecodeProto checks that the protobuf decoder never panics, and that
// whenever both it and the official gogo-generated types accept a body, they
// read the same entries.
func FuzzDecodeProto(f *testing.F) {
	raw, _ := func() ([]byte, error) { r := officialRequest(); return r.Marshal() }()
	f.Add(raw)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x0a, 0x09, 0x0a, 0x07, '{', 'a', '=', '"', 'b', '"', '}'})
	f.Add([]byte{0x0b, 0x0c}) // group
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d decoder
		got, err := d.decodeProto(raw, nil)
		if err != nil {
			return
		}
		var req push.PushRequest
		if req.Unmarshal(raw) != nil {
			return
		}
		var want []push.Entry
		for _, s := range req.Streams {
			want = append(want, s.Entries...)
		}
		if len(got) != len(want) {
			t.Fatalf("decoded %d entries, official %d", len(got), len(want))
		}
		for i := range got {
			if got[i].Line != want[i].Line || !got[i].Timestamp.Equal(want[i].Timestamp) {
				t.Fatalf("entry %d: %q %v, official %q %v", i, got[i].Line, got[i].Timestamp, want[i].Line, want[i].Timestamp)
			}
			n := 0
			got[i].Metadata.Range(func(labels.Label) { n++ })
			if n != len(want[i].StructuredMetadata) {
				t.Fatalf("entry %d: %d metadata, official %d", i, n, len(want[i].StructuredMetadata))
			}
		}
	})
}

// FuzzDecodeJSON checks that the JSON decoder never panics.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(jsonBody))
	f.Add([]byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x",{}]]}]}`))
	f.Add([]byte(`{"streams":[{"stream":{"a":"b"},"values":[[]]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var d decoder
		entries, err := d.decodeJSON(body, nil)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Labels.IsEmpty() {
				t.Fatal("entry without labels accepted")
			}
		}
	})
}

// FuzzParseLabels checks that the label parser never panics and that what
// it accepts renders back (as the Loki sink renders labels) to a string it
// parses to the same labels.
func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{`{a="b"}`, `{a="b", c="d"}`, "{a=`raw`}", `{a="\u00e9\n"}`, `{}`, `{a="b",}`, ` { a = "b" } `, `{a="\x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := parseLabels(s)
		if err != nil {
			return
		}
		var b strings.Builder
		b.WriteByte('{')
		i := 0
		ls.Range(func(l labels.Label) {
			if i > 0 {
				b.WriteString(", ")
			}
			i++
			b.WriteString(l.Name + "=" + strconv.Quote(l.Value))
		})
		b.WriteByte('}')
		again, err := parseLabels(b.String())
		if err != nil || !labels.Equal(ls, again) {
			t.Fatalf("%q → %v → %q → %v, %v", s, ls, b.String(), again, err)
		}
	})
}

var _ = ferry.Entry{}
var _ = time.Second
