package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/reptest"
	"github.com/prometheus/prometheus/model/labels"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func entry(line string, kv ...string) ferry.Entry {
	if len(kv) == 0 {
		kv = []string{"job", "test"}
	}
	return ferry.Entry{Labels: labels.FromStrings(kv...), Timestamp: t0, Line: line}
}

// extractedOf runs stages over one line and returns what the last stage
// saw extracted.
func extractedOf(t *testing.T, line string, stages ...Stage) (map[string]string, []ferry.Entry) {
	t.Helper()
	var got map[string]string
	stages = append(stages, Func(func(c *Context, e *ferry.Entry) bool {
		got = maps.Clone(c.Extracted)
		return true
	}))
	p := started(t, nil, stages...)
	b, err := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(line)}})
	if err != nil {
		t.Fatal(err)
	}
	return got, b.Items
}

func checkExtracted(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("extracted[%q] = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected extracted[%q] = %q", k, got[k])
		}
	}
}

func TestJSON(t *testing.T) {
	const nested = `{"time":"2012-11-01T22:08:41+00:00","app":"loki","component":["parser","type"],"level":"WARN",` +
		`"nested":{"child":"value","list":[{"a":1},{"a":2}]},"duration":125,"ok":true,"none":null,` +
		`"message":"this is a log line","extra":"{\"user\":\"marco\"}","dotted.key":"d","esc\u0061ped":"\u00e9\n"}`
	for _, tc := range []struct {
		name  string
		line  string
		stage *JSON
		want  map[string]string
		fail  bool
	}{
		{"docker line", `{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`,
			&JSON{Expressions: map[string]string{"output": "log", "stream": "stream", "timestamp": "time"}},
			map[string]string{"output": "log message\n", "stream": "stderr", "timestamp": "2019-04-30T02:12:41.8443515Z"}, false},
		{"nested", nested, &JSON{Expressions: map[string]string{
			"app": "", "component": "", "level": "", "nested_child": "nested.child", "duration": "",
			"ok": "", "none": "", "missing": "", "extra": "", "second_a": "nested.list[1].a", "dotted": `"dotted.key"`,
			"escaped": "escaped", "list": "nested.list",
		}}, map[string]string{
			"app": "loki", "component": `["parser","type"]`, "level": "WARN", "nested_child": "value",
			"duration": "125", "ok": "true", "extra": `{"user":"marco"}`, "second_a": "2", "dotted": "d",
			"escaped": "é\n", "list": `[{"a":1},{"a":2}]`,
		}, false},
		// Fewer first keys than keyIndex keeps in a map (the nested case has
		// more), two expressions under one.
		{"shared first key", `{"x":1,"user":{"id":7,"name":"bob"}}`, &JSON{Expressions: map[string]string{"id": "user.id", "name": "user.name", "x": ""}},
			map[string]string{"id": "7", "name": "bob", "x": "1"}, false},
		{"all members", `{"a":"x","b":2,"c":{"d":1}}`, &JSON{},
			map[string]string{"a": "x", "b": "2", "c": `{"d":1}`}, false},
		{"top-level array", `[{"a":"x"}]`, &JSON{Expressions: map[string]string{"a": "[0].a"}}, map[string]string{}, true},
		{"malformed", `{"a":"x",}`, &JSON{Expressions: map[string]string{"a": ""}}, map[string]string{}, true},
		{"not json", `level=info`, &JSON{Expressions: map[string]string{"level": ""}}, map[string]string{}, true},
		{"trailing garbage", `{"a":1} x`, &JSON{Expressions: map[string]string{"a": ""}}, map[string]string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := started(t, nil, tc.stage)
			var got map[string]string
			p.stages = append(p.stages, Func(func(c *Context, e *ferry.Entry) bool { got = maps.Clone(c.Extracted); return true }))
			b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(tc.line)}})
			checkExtracted(t, got, tc.want)
			if f := p.Failures()["json_malformed"]; (f == 1) != tc.fail {
				t.Errorf("failures = %d", f)
			}
			if len(b.Items) != 1 || b.Items[0].Line != tc.line {
				t.Errorf("entry changed: %+v", b.Items)
			}
		})
	}
	// Dropping malformed lines.
	rep := &reptest.Reporter{}
	p := started(t, rep, &JSON{DropMalformed: true})
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry("{"), entry("{}")}})
	if len(b.Items) != 1 || rep.Drops("json_malformed") != 1 {
		t.Fatalf("items %d dropped %v", len(b.Items), rep.AllDrops())
	}
	if _, err := New(&JSON{Expressions: map[string]string{"x": "a..b"}}); err == nil {
		t.Error("bad path accepted")
	}
}

func TestLogfmt(t *testing.T) {
	for _, tc := range []struct {
		line  string
		stage *Logfmt
		want  map[string]string
		fail  bool
	}{
		{`time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 message="this is a log line" extra="user=foo"`,
			&Logfmt{Mapping: map[string]string{"time": "", "app": "", "level": "", "duration": "", "message": "", "extra": ""}},
			map[string]string{"time": "2012-11-01T22:08:41+00:00", "app": "loki", "level": "WARN", "duration": "125",
				"message": "this is a log line", "extra": "user=foo"}, false},
		{`a=1 b="q \"x\"" flag c=`, &Logfmt{},
			map[string]string{"a": "1", "b": `q "x"`, "flag": "", "c": ""}, false},
		{`level=info level=warn`, &Logfmt{Mapping: map[string]string{"lvl": "level"}},
			map[string]string{"lvl": "warn"}, false},
		// More keys than keyIndex compares in a slice, one of them under two
		// names: the map it builds.
		{`k1=1 k2=2 k3=3 k4=4 k5=5 k6=6 k7=7 k8=8 k9=9 k10=10 other=x`,
			&Logfmt{Mapping: map[string]string{"k1": "", "k2": "", "k3": "", "k4": "", "k5": "", "k6": "", "k7": "",
				"k8": "", "k9": "", "ten": "k10", "tenth": "k10"}},
			map[string]string{"k1": "1", "k2": "2", "k3": "3", "k4": "4", "k5": "5", "k6": "6", "k7": "7", "k8": "8",
				"k9": "9", "ten": "10", "tenth": "10"}, false},
		{`a=1 b="unterminated`, &Logfmt{}, map[string]string{"a": "1"}, true},
		{`a=1 ="x"`, &Logfmt{}, map[string]string{"a": "1"}, true},
	} {
		p := started(t, nil, tc.stage)
		var got map[string]string
		p.stages = append(p.stages, Func(func(c *Context, e *ferry.Entry) bool { got = maps.Clone(c.Extracted); return true }))
		b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(tc.line)}})
		checkExtracted(t, got, tc.want)
		if f := p.Failures()["logfmt_malformed"]; (f == 1) != tc.fail {
			t.Errorf("%q: logfmt_malformed = %d, want failure %v", tc.line, f, tc.fail)
		}
		if len(b.Items) != 1 || b.Items[0].Line != tc.line {
			t.Errorf("%q: entry changed: %+v", tc.line, b.Items)
		}
	}
}

func TestRegex(t *testing.T) {
	got, _ := extractedOf(t, "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!",
		&Regex{Expression: `^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$`})
	checkExtracted(t, got, map[string]string{"time": "2019-01-01T01:00:00.000000001Z", "stream": "stderr",
		"flags": "P", "content": "i'm a log message!"})
	// From an extracted value; optional group absent.
	got, _ = extractedOf(t, `{"msg":"user=bob"}`, &JSON{Expressions: map[string]string{"msg": ""}},
		&Regex{Source: "msg", Expression: `user=(?P<user>\w+)(?: id=(?P<id>\d+))?`})
	checkExtracted(t, got, map[string]string{"msg": "user=bob", "user": "bob"})
	p := started(t, nil, &Regex{Expression: `(?P<x>\d+)`})
	p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry("none")}})
	if p.Failures()["regex_unmatched"] != 1 {
		t.Error("unmatched not counted")
	}
	for _, bad := range []string{`(`, `no groups`} {
		if _, err := New(&Regex{Expression: bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDocker(t *testing.T) {
	got, out := extractedOf(t, `{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`, &Docker{})
	checkExtracted(t, got, map[string]string{"output": "log message", "stream": "stderr", "timestamp": "2019-04-30T02:12:41.8443515Z"})
	e := out[0]
	if e.Line != "log message" || e.Labels.Get("stream") != "stderr" || e.Labels.Get("job") != "test" ||
		!e.Timestamp.Equal(time.Date(2019, 4, 30, 2, 12, 41, 844351500, time.UTC)) {
		t.Fatalf("%+v", e)
	}
	for _, bad := range []string{`not json`, `{"log":1,"stream":"stdout","time":"2019-04-30T02:12:41Z"}`, `{"log":"x","time":"yesterday"}`} {
		_, out := extractedOf(t, bad, &Docker{})
		if out[0].Line != bad {
			t.Errorf("%q changed", bad)
		}
	}
}

func TestCRI(t *testing.T) {
	got, out := extractedOf(t, "2019-04-30T02:12:41.8443515Z stdout F message", &CRI{})
	checkExtracted(t, got, map[string]string{"content": "message", "stream": "stdout", "flags": "F", "timestamp": "2019-04-30T02:12:41.8443515Z"})
	if out[0].Line != "message" || out[0].Labels.Get("stream") != "stdout" {
		t.Fatalf("%+v", out[0])
	}
	for _, bad := range []string{
		"2019-01-01 T01:00:00.000000001Z stderr testgood",
		"2019-01-01T01:00:00.000000001Z testgood",
		"2019-01-01T01:00:00.000000001Z stdout X x",
	} {
		p := started(t, nil, &CRI{})
		b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(bad)}})
		if b.Items[0].Line != bad || p.Failures()["cri_malformed"] != 1 {
			t.Errorf("%q: %+v %v", bad, b.Items, p.Failures())
		}
	}
}

// batchAck makes a batch whose outcome is recorded.
func batchAck(items []ferry.Entry) (ferry.Batch[ferry.Entry], *ackRecord) {
	r := &ackRecord{}
	return ferry.NewBatch(items, func(err error) { r.mu.Lock(); r.n++; r.err = err; r.mu.Unlock() }), r
}

type ackRecord struct {
	mu  sync.Mutex
	n   int
	err error
}

func (r *ackRecord) count() int { r.mu.Lock(); defer r.mu.Unlock(); return r.n }

func TestCRIPartialKeepsAcks(t *testing.T) {
	p := started(t, nil, &CRI{})
	ts := "2019-04-30T02:12:41.8443515Z"
	b1, a1 := batchAck([]ferry.Entry{entry(ts + " stdout P part1 "), entry(ts + " stderr F other")})
	out1, _ := p.Process(context.Background(), b1)
	if len(out1.Items) != 1 || out1.Items[0].Line != "other" {
		t.Fatalf("%+v", out1.Items)
	}
	out1.Done(nil)
	if a1.count() != 0 {
		t.Fatal("batch with a held partial line acknowledged early")
	}
	b2, a2 := batchAck([]ferry.Entry{entry(ts + " stdout P part2 "), entry(ts + " stdout F end")})
	out2, _ := p.Process(context.Background(), b2)
	if len(out2.Items) != 1 || out2.Items[0].Line != "part1 part2 end" || out2.Items[0].Labels.Get("stream") != "stdout" {
		t.Fatalf("%+v", out2.Items)
	}
	out2.Done(nil)
	if a1.count() != 1 || a2.count() != 1 {
		t.Fatalf("acks %d %d", a1.count(), a2.count())
	}
}

func TestLabelStages(t *testing.T) {
	p := started(t, nil,
		&JSON{Expressions: map[string]string{"level": "", "app": "", "trace": "trace_id"}},
		&Labels{Values: map[string]string{"level": "", "application": "app", "absent": ""}},
		&StructuredMetadata{Values: map[string]string{"trace_id": "trace"}},
		&StaticLabels{Values: map[string]string{"env": "prod", "tmp": "x"}},
		&LabelDrop{Names: []string{"tmp"}},
	)
	in := []ferry.Entry{
		entry(`{"level":"warn","app":"web","trace_id":"abc"}`, "job", "j", "host", "h"),
		entry(`{"level":"warn","app":"web","trace_id":"def"}`, "job", "j", "host", "h"),
	}
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: in})
	want := labels.FromStrings("job", "j", "host", "h", "level", "warn", "application", "web", "env", "prod")
	for i, e := range b.Items {
		if !labels.Equal(e.Labels, want) {
			t.Errorf("labels %v", e.Labels)
		}
		if got := e.Metadata.Get("trace_id"); got != []string{"abc", "def"}[i] {
			t.Errorf("metadata %v", e.Metadata)
		}
	}
	keep := started(t, nil, &LabelKeep{Names: []string{"job"}})
	b, _ = keep.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry("x", "job", "j", "a", "1", "b", "2")}})
	if !labels.Equal(b.Items[0].Labels, labels.FromStrings("job", "j")) {
		t.Errorf("keep: %v", b.Items[0].Labels)
	}
	if _, err := New(&Labels{Values: map[string]string{"bad-name": ""}}); err == nil {
		t.Error("invalid label name accepted")
	}
}

func TestTimestamp(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	year := time.Now().Year()
	for _, tc := range []struct {
		value string
		stage *Timestamp
		want  time.Time
	}{
		{"2019-04-30T02:12:41.8443515Z", &Timestamp{Format: "RFC3339Nano"}, time.Date(2019, 4, 30, 2, 12, 41, 844351500, time.UTC)},
		{"2012-11-01T22:08:41+00:00", &Timestamp{Format: "RFC3339"}, time.Date(2012, 11, 1, 22, 8, 41, 0, time.UTC)},
		{"1562708916", &Timestamp{Format: "Unix"}, time.Unix(1562708916, 0)},
		{"1562708916.414123", &Timestamp{Format: "Unix"}, time.Unix(1562708916, 414123000)},
		{"1562708916414", &Timestamp{Format: "UnixMs"}, time.UnixMilli(1562708916414)},
		{"1562708916414123", &Timestamp{Format: "UnixUs"}, time.UnixMicro(1562708916414123)},
		{"1562708916000000123", &Timestamp{Format: "UnixNs"}, time.Unix(1562708916, 123)},
		{"2019-04-30 02:12:41", &Timestamp{Format: "2006-01-02 15:04:05", Location: "America/New_York"}, time.Date(2019, 4, 30, 2, 12, 41, 0, ny)},
		{"Apr 30 02:12:41", &Timestamp{Format: "Jan 02 15:04:05"}, time.Date(year, 4, 30, 2, 12, 41, 0, time.UTC)},
		{"30/04/2019", &Timestamp{Format: "RFC3339", FallbackFormats: []string{"UnixMs", "02/01/2006"}}, time.Date(2019, 4, 30, 0, 0, 0, 0, time.UTC)},
		{"garbage", &Timestamp{Format: "RFC3339", ActionOnFailure: "skip"}, t0},
	} {
		tc.stage.Source = "ts"
		_, out := extractedOf(t, tc.value, &Regex{Expression: `(?P<ts>.+)`}, tc.stage)
		if !out[0].Timestamp.Equal(tc.want) {
			t.Errorf("%q with %q: %v, want %v", tc.value, tc.stage.Format, out[0].Timestamp, tc.want)
		}
	}
	// Fudge: the last good timestamp of the stream plus 1ns.
	p := started(t, nil, &Regex{Expression: `(?P<ts>\S+)`}, &Timestamp{Source: "ts", Format: "RFC3339"})
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{
		entry("2020-01-01T00:00:00Z"), entry("bad"), entry("bad"),
	}})
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if !b.Items[1].Timestamp.Equal(base.Add(1)) || !b.Items[2].Timestamp.Equal(base.Add(2)) {
		t.Errorf("fudge: %v %v", b.Items[1].Timestamp, b.Items[2].Timestamp)
	}
	if p.Failures()["timestamp_unparsed"] != 2 {
		t.Errorf("failures %v", p.Failures())
	}
	for _, bad := range []*Timestamp{{Source: "x"}, {Source: "x", Format: "Unix", Location: "Mars/Olympus"}, {Source: "x", Format: "Unix", ActionOnFailure: "panic"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Fudged timestamps follow the last good one of their own stream, however
// the streams interleave.
func TestTimestampFudgeStreams(t *testing.T) {
	p := started(t, nil, &Regex{Expression: `(?P<ts>\S+)`}, &Timestamp{Source: "ts", Format: "RFC3339"})
	a, b := []string{"job", "a"}, []string{"job", "b"}
	out, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{
		entry("2020-01-01T00:00:00Z", a...), entry("2020-01-01T00:00:05Z", b...), entry("bad", a...),
		entry("bad", b...), entry("bad", a...), entry("2020-01-01T00:00:10Z", a...), entry("bad", b...),
		entry("bad", a...), entry("bad", "job", "c"),
	}})
	at := func(sec, ns int) time.Time { return time.Date(2020, 1, 1, 0, 0, sec, ns, time.UTC) }
	want := []time.Time{at(0, 0), at(5, 0), at(0, 1), at(5, 1), at(0, 2), at(10, 0), at(5, 2), at(10, 1), t0}
	for i, w := range want {
		if got := out.Items[i].Timestamp; !got.Equal(w) {
			t.Errorf("entry %d (%s of %s): %v, want %v", i, out.Items[i].Line, out.Items[i].Labels, got, w)
		}
	}
}

// An RFC 3339 Timestamp stage reads a stream's timestamps with the
// Processor's clock: one in the minute of the last is read from its
// seconds on, and agrees with time.ParseInLocation; one with the offset of
// Location is in Location, as time.ParseInLocation puts it.
func TestTimestampRFC3339Clock(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip(err)
	}
	values := []string{"2026-12-07T10:15:00.5Z", "2026-12-07T10:15:42.25Z", "2026-12-07T10:15:42.000000001Z",
		"2026-12-07T05:15:43-05:00", "2026-12-07T10:15:61Z", "2026-12-07T10:16:00Z"}
	p := started(t, nil, &Regex{Expression: `(?P<ts>\S+)`}, &Timestamp{Source: "ts", Format: "RFC3339Nano", Location: "America/New_York"})
	var in []ferry.Entry
	for _, v := range values {
		in = append(in, entry(v))
	}
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: in})
	for i, v := range values {
		want, err := time.ParseInLocation(time.RFC3339Nano, v, ny)
		if err != nil { // fudged: the last good one plus 1ns
			want = b.Items[i-1].Timestamp.Add(1)
		}
		got := b.Items[i].Timestamp
		if !got.Equal(want) || got.Location().String() != want.Location().String() {
			t.Errorf("%s: %v, want %v", v, got, want)
		}
	}
	if p.Failures()["timestamp_unparsed"] != 1 {
		t.Errorf("failures %v", p.Failures())
	}
}

func TestOutputTemplateReplaceDecolorize(t *testing.T) {
	_, out := extractedOf(t, `{"level":"warn","msg":"hello"}`,
		&JSON{Expressions: map[string]string{"level": "", "msg": ""}},
		&Template{Source: "msg", Template: `{{ ToUpper .level }}: {{ .Value }}`},
		&Output{Source: "msg"})
	if out[0].Line != "WARN: hello" {
		t.Errorf("template/output: %q", out[0].Line)
	}
	_, out = extractedOf(t, "plain", &Output{Source: "missing"})
	if out[0].Line != "plain" {
		t.Errorf("output without value changed the line: %q", out[0].Line)
	}
	for _, tc := range []struct{ expr, repl, in, want string }{
		{`password (\S+)`, "****", "user=a password secret1 ok", "user=a password **** ok"},
		{`(\d+)\.(\d+)\.\d+\.\d+`, "x", "ip 10.1.2.3 and 192.168.0.1", "ip x.x.2.3 and x.x.0.1"},
		{`secret`, "[{{ .Value }}]", "a secret here", "a [secret] here"},
		{`(?P<user>bob)`, "{{.Value}}-redacted", "hi bob", "hi bob-redacted"},
		{`nomatch`, "x", "unchanged", "unchanged"},
	} {
		got, out := extractedOf(t, tc.in, &Replace{Expression: tc.expr, Replace: tc.repl})
		if out[0].Line != tc.want {
			t.Errorf("replace %q: %q, want %q", tc.expr, out[0].Line, tc.want)
		}
		if strings.Contains(tc.expr, "?P<user>") && got["user"] != "bob" {
			t.Errorf("replace did not extract: %v", got)
		}
	}
	for in, want := range map[string]string{
		"\x1b[31mred\x1b[0m text":         "red text",
		"\x1b[1;32mbold green\x1b[m":      "bold green",
		"\x1b]0;title\x07after":           "after",
		"no colour":                       "no colour",
		"cursor\x1b[2Kline\x1b":           "cursorline",
		"\x1b[38;5;208morange\x1b[39m ok": "orange ok",
	} {
		_, out := extractedOf(t, in, &Decolorize{})
		if out[0].Line != want {
			t.Errorf("decolorize %q: %q", in, out[0].Line)
		}
	}
}

func TestDrop(t *testing.T) {
	old := entry("old line")
	old.Timestamp = time.Now().Add(-2 * time.Hour)
	for _, tc := range []struct {
		name  string
		stage *Drop
		in    ferry.Entry
		drop  bool
	}{
		{"expression on line", &Drop{Expression: ".*debug.*"}, entry("a debug line"), true},
		{"expression no match", &Drop{Expression: ".*debug.*"}, entry("an info line"), false},
		{"source value", &Drop{Source: []string{"level"}, Value: "debug"}, entry("level=debug"), true},
		{"source value differs", &Drop{Source: []string{"level"}, Value: "debug"}, entry("level=info"), false},
		{"source present", &Drop{Source: []string{"level"}}, entry("level=info"), true},
		{"source missing", &Drop{Source: []string{"missing"}}, entry("level=info"), false},
		{"two sources", &Drop{Source: []string{"level", "app"}, Value: "info;web"}, entry("level=info app=web"), true},
		{"older than", &Drop{OlderThan: time.Hour}, old, true},
		{"not older than", &Drop{OlderThan: time.Hour}, func() ferry.Entry { e := entry("x"); e.Timestamp = time.Now(); return e }(), false},
		{"longer than", &Drop{LongerThan: 5}, entry("123456"), true},
		{"not longer than", &Drop{LongerThan: 6}, entry("123456"), false},
		{"all conditions", &Drop{LongerThan: 3, Expression: "x"}, entry("yyyyy"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &reptest.Reporter{}
			p := started(t, rep, &Logfmt{}, tc.stage)
			b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{tc.in}})
			if (len(b.Items) == 0) != tc.drop || tc.drop && rep.Drops("drop_stage") != 1 {
				t.Errorf("kept %d, dropped %v", len(b.Items), rep.AllDrops())
			}
		})
	}
	if _, err := New(&Drop{}); err == nil {
		t.Error("drop without condition accepted")
	}
}

func TestMatch(t *testing.T) {
	rep := &reptest.Reporter{}
	p := started(t, rep,
		&Match{Selector: `{app="web", level=~"warn|error"}`, Stages: []Stage{&StaticLabels{Values: map[string]string{"alert": "yes"}}}},
		&Match{Selector: `{app!="web"}`, Action: DropMatching, DropReason: "not_web"},
	)
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{
		entry("1", "app", "web", "level", "error"),
		entry("2", "app", "web", "level", "info"),
		entry("3", "app", "db", "level", "error"),
	}})
	if len(b.Items) != 2 || b.Items[0].Labels.Get("alert") != "yes" || b.Items[1].Labels.Has("alert") || rep.Drops("not_web") != 1 {
		t.Fatalf("%+v %v", b.Items, rep.AllDrops())
	}
	for _, sel := range []string{`app="x"`, `{app}`, `{app="x"`, `{1a="x"}`, `{a=~"("}`, `{}`, `{a="x" b="y"}`} {
		if _, err := ParseSelector(sel); err == nil {
			t.Errorf("%q accepted", sel)
		}
	}
	m, err := ParseSelector("{ a = `x\\d` , b!~\"y\" }")
	if err != nil || len(m) != 2 || m[0].Value != `x\d` || m[1].Type != labels.MatchNotRegexp {
		t.Fatalf("%v %v", m, err)
	}
}

func TestLimit(t *testing.T) {
	rep := &reptest.Reporter{}
	p := started(t, rep, &Limit{Rate: 0.001, Burst: 2, Drop: true, ByLabel: "app"})
	mk := func() []ferry.Entry {
		var in []ferry.Entry
		for i := 0; i < 5; i++ {
			in = append(in, entry("x", "app", "a"), entry("y", "app", "b"))
		}
		return in
	}
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: mk()})
	if len(b.Items) != 4 || rep.Drops("rate_limited") != 6 {
		t.Fatalf("kept %d dropped %v", len(b.Items), rep.AllDrops())
	}
	rep = &reptest.Reporter{}
	p = started(t, rep, &Limit{Rate: 0.001, Burst: 1, Drop: true, PerStream: true})
	b, _ = p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: mk()})
	if len(b.Items) != 2 || rep.Drops("rate_limited") != 8 {
		t.Fatalf("per stream: kept %d dropped %v", len(b.Items), rep.AllDrops())
	}
	// Blocking: 10 entries at 1000/s with burst 1 take about 9ms.
	p = started(t, rep, &Limit{Rate: 1000, Burst: 1})
	start := time.Now()
	b, _ = p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: mk()})
	if len(b.Items) != 10 || time.Since(start) < 5*time.Millisecond {
		t.Fatalf("kept %d in %v", len(b.Items), time.Since(start))
	}
}

func TestMultiline(t *testing.T) {
	lines := []string{
		`[2020-12-03 11:36:20] "GET /hello HTTP/1.1" 200 -`,
		`[2020-12-03 11:36:23] ERROR in app: Exception on /error [GET]`,
		`Traceback (most recent call last):`,
		`  File "/home/pallets/app.py", line 2447, in wsgi_app`,
		`Exception: Custom exception`,
		`[2020-12-03 11:36:24] "GET /error HTTP/1.1" 500 -`,
	}
	p := started(t, nil, &Multiline{FirstLine: `^\[\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}:\d{2}\]`, MaxWait: time.Hour})
	var in []ferry.Entry
	for _, l := range lines {
		in = append(in, entry(l))
	}
	b1, a1 := batchAck(in[:3])
	out1, _ := p.Process(context.Background(), b1)
	if len(out1.Items) != 1 || out1.Items[0].Line != lines[0] {
		t.Fatalf("first batch: %q", out1.Items)
	}
	out1.Done(nil)
	if a1.count() != 0 {
		t.Fatal("acknowledged while lines are held")
	}
	b2, a2 := batchAck(in[3:])
	out2, _ := p.Process(context.Background(), b2)
	want := strings.Join(lines[1:5], "\n")
	if len(out2.Items) != 1 || out2.Items[0].Line != want {
		t.Fatalf("second batch: %q", out2.Items)
	}
	out2.Done(nil)
	if a1.count() != 1 || a2.count() != 0 {
		t.Fatalf("acks %d %d", a1.count(), a2.count())
	}
	// Flush before MaxWait keeps the last block; FlushAll hands it on.
	fb, _ := p.Flush(context.Background())
	if len(fb.Items) != 0 {
		t.Fatalf("early flush: %q", fb.Items)
	}
	fb = p.FlushAll(context.Background())
	if len(fb.Items) != 1 || fb.Items[0].Line != lines[5] {
		t.Fatalf("flush: %q", fb.Items)
	}
	fb.Done(nil)
	if a2.count() != 1 {
		t.Fatal("flushed block did not acknowledge its batch")
	}
	// MaxLines.
	p = started(t, nil, &Multiline{FirstLine: `^start`, MaxLines: 2})
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{
		entry("orphan"), entry("start"), entry("a"), entry("b"), entry("start"),
	}})
	var got []string
	for _, e := range b.Items {
		got = append(got, e.Line)
	}
	if strings.Join(got, "|") != "orphan|start\na|b" {
		t.Fatalf("%q", got)
	}
}

func TestMultilineMaxWait(t *testing.T) {
	p := started(t, nil, &Multiline{FirstLine: `^start`, MaxWait: 10 * time.Millisecond}, &StaticLabels{Values: map[string]string{"after": "yes"}})
	out, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry("start"), entry("more")}})
	if len(out.Items) != 0 {
		t.Fatal(out.Items)
	}
	time.Sleep(20 * time.Millisecond) // past MaxWait: the time passing is what is tested
	fb, _ := p.Flush(context.Background())
	if len(fb.Items) != 1 || fb.Items[0].Line != "start\nmore" || fb.Items[0].Labels.Get("after") != "yes" {
		t.Fatalf("%+v", fb.Items)
	}
}

func TestInitErrorsJoined(t *testing.T) {
	_, err := New(&Regex{Expression: "("}, &Output{}, nil)
	if err == nil || !strings.Contains(err.Error(), "stage 0") || !strings.Contains(err.Error(), "stage 1") || !strings.Contains(err.Error(), "stage 2") {
		t.Fatalf("%v", err)
	}
}

// started returns a started Processor running stages, reporting to rep
// (ferry.NopReporter() when nil).
func started(t testing.TB, rep ferry.Reporter, stages ...Stage) *Processor {
	t.Helper()
	p, err := New(stages...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStartRequired: a Processor refuses to run before Start, and a
// started one reports through the Reporter given to Start, not the one in
// the context of each call.
func TestStartRequired(t *testing.T) {
	p := MustNew(&JSON{DropMalformed: true})
	in := ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry("not json")}}
	if _, err := p.Process(context.Background(), in); !errors.Is(err, ErrNotStarted) || !errors.Is(err, ferry.ErrNotStarted) || ferry.IsPermanent(err) {
		t.Errorf("Process before Start: %v, want ErrNotStarted, not permanent", err)
	}
	if in.Items[0].Line != "not json" {
		t.Error("Process before Start changed the batch")
	}
	if _, err := p.Flush(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Flush before Start: %v, want ErrNotStarted", err)
	}
	if b := p.FlushAll(context.Background()); len(b.Items) != 0 {
		t.Errorf("FlushAll before Start: %d entries", len(b.Items))
	}
	rep, other := &reptest.Reporter{}, &reptest.Reporter{}
	if err := p.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Process(ferry.WithReporter(context.Background(), other), in); err != nil {
		t.Fatal(err)
	}
	if rep.Drops("json_malformed") != 1 || len(other.AllDrops()) != 0 {
		t.Errorf("drops %v through the Reporter given to Start, %v through the context's", rep.AllDrops(), other.AllDrops())
	}
}

// The labels an entry leaves with are its own whichever path found them:
// the few results last used, the cache by hash, or a new build; here with
// more level values than the recent results hold, two streams, and
// batches one after another.
func TestLabelsCached(t *testing.T) {
	p := started(t, nil, &Logfmt{Mapping: map[string]string{"level": ""}}, &Labels{Values: map[string]string{"level": ""}})
	levels := []string{"debug", "info", "warn", "error", "fatal", "trace"}
	streams := []labels.Labels{labels.FromStrings("job", "a"), labels.FromStrings("job", "b", "host", "h")}
	for batch := range 3 {
		var in []ferry.Entry
		for i := range 200 {
			lv := levels[(i*7+batch)%len(levels)]
			if i%11 == 0 {
				lv = levels[0]
			}
			in = append(in, ferry.Entry{Labels: streams[i%3%2], Line: "level=" + lv + " msg=x"})
		}
		b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: slices.Clone(in)})
		for i, e := range b.Items {
			lb := labels.NewBuilder(in[i].Labels)
			lb.Set("level", strings.TrimPrefix(strings.Fields(in[i].Line)[0], "level="))
			if want := lb.Labels(); !labels.Equal(e.Labels, want) {
				t.Fatalf("batch %d, entry %d: labels %v, want %v", batch, i, e.Labels, want)
			}
		}
	}
}

// TestStringsOutliveTheirBatch: the strings stages make for the entries of
// a batch share memory that the Processor lets go of after the batch; the
// entries of earlier batches must keep their lines and extracted labels
// while later batches are processed.
func TestStringsOutliveTheirBatch(t *testing.T) {
	p := started(t, nil,
		&Docker{},
		&JSON{Source: "output", Expressions: map[string]string{"msg": "", "text": ""}},
		&Labels{Values: map[string]string{"msg": ""}},
		&Output{Source: "text"},
		&Decolorize{},
		&Replace{Expression: `(secret=\w+)`, Replace: "***"},
	)
	// Each level of JSON escapes what the next unescapes: the Docker stage
	// unescapes the log, the JSON stage the values; the text then carries
	// real escape sequences for Decolorize, and a secret for Replace.
	docker := func(i int) string {
		inner, _ := json.Marshal(map[string]string{
			"msg":  fmt.Sprintf("m%d\n", i),
			"text": fmt.Sprintf("\x1b[1mid %d \"quoted\" secret=s%d\x1b[0m", i, i),
		})
		outer, _ := json.Marshal(map[string]string{"log": string(inner) + "\n", "stream": "stdout", "time": "2019-04-30T02:12:41Z"})
		return string(outer)
	}
	var kept []ferry.Entry
	for batch := range 50 {
		var in []ferry.Entry
		for j := range 40 {
			in = append(in, entry(docker(batch*40+j)))
		}
		b, err := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: in})
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, b.Items...)
	}
	if len(kept) != 2000 {
		t.Fatalf("%d entries", len(kept))
	}
	for i, e := range kept {
		line, msg := fmt.Sprintf(`id %d "quoted" ***`, i), fmt.Sprintf("m%d\n", i)
		if e.Line != line || e.Labels.Get("msg") != msg {
			t.Fatalf("entry %d: line %q, msg %q; want %q, %q", i, e.Line, e.Labels.Get("msg"), line, msg)
		}
	}
}

// TestLabelsCacheCopiesValues: the label cache keeps the values it was
// asked for, not the lines they were cut from.
func TestLabelsCacheCopiesValues(t *testing.T) {
	p := started(t, nil, &Logfmt{Mapping: map[string]string{"level": ""}}, &Labels{Values: map[string]string{"level": ""}})
	line := "level=info " + strings.Repeat("x", 1000)
	if _, err := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(line)}}); err != nil {
		t.Fatal(err)
	}
	for _, ces := range p.c.cache {
		for _, ce := range ces {
			for _, m := range ce.mods {
				if unsafe.StringData(m) == unsafe.StringData(line[len("level="):]) {
					t.Errorf("the cache keeps %q as a substring of the line", m)
				}
			}
			if !slices.Equal(ce.mods, []string{"level", "info"}) {
				t.Errorf("cached changes %q", ce.mods)
			}
		}
	}
}
