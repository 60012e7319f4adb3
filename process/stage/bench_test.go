package stage

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

// BenchmarkStages runs each stage over batches of 1000 entries and reports
// entries/s and allocs/entry (heap allocations per entry, from
// runtime.MemStats) next to B/op.
//
//	go test -run '^$' -bench Stages -benchtime 2000x ./process/stage
func BenchmarkStages(b *testing.B) {
	const n = 1000
	ls := labels.FromStrings("job", "bench", "host", "h1")
	mk := func(f func(i int) string) []ferry.Entry {
		out := make([]ferry.Entry, n)
		for i := range out {
			out[i] = ferry.Entry{Labels: ls, Timestamp: t0, Line: f(i)}
		}
		return out
	}
	jsonLines := mk(func(i int) string {
		return fmt.Sprintf(`{"ts":"2026-11-25T13:28:58.%06dZ","level":"info","msg":"request served","status":200,"user":{"id":%d,"name":"bob"}}`, i, i)
	})
	logfmtLines := mk(func(i int) string {
		return fmt.Sprintf(`ts=2026-11-25T13:28:58.%06dZ level=info msg="request served" status=200 user=%d`, i, i)
	})
	dockerLines := mk(func(i int) string {
		return fmt.Sprintf(`{"log":"request %d served\n","stream":"stdout","time":"2026-11-25T13:28:58.%06dZ"}`, i, i)
	})
	criLines := mk(func(i int) string {
		return fmt.Sprintf(`2026-11-25T13:28:58.%06dZ stdout F request %d served`, i, i)
	})
	plain := mk(func(i int) string { return fmt.Sprintf("2026-11-25 13:28:58 INFO request %d served in 3ms", i) })
	colour := mk(func(i int) string { return fmt.Sprintf("\x1b[32mINFO\x1b[0m request %d served", i) })
	multi := mk(func(i int) string {
		if i%5 == 0 {
			return fmt.Sprintf("2026-11-25 13:28:58 ERROR failure %d", i)
		}
		return "    at com.example.Service.method(Service.java:42)"
	})

	for _, tc := range []struct {
		name   string
		in     []ferry.Entry
		stages []Stage
	}{
		{"baseline-empty", plain, nil},
		{"json", jsonLines, []Stage{&JSON{Expressions: map[string]string{"ts": "", "level": "", "user_id": "user.id"}}}},
		{"json+labels+timestamp", jsonLines, []Stage{
			&JSON{Expressions: map[string]string{"ts": "", "level": ""}},
			&Labels{Values: map[string]string{"level": ""}},
			&Timestamp{Source: "ts", Format: "RFC3339Nano"}}},
		{"logfmt", logfmtLines, []Stage{&Logfmt{Mapping: map[string]string{"level": "", "status": ""}}}},
		{"regex", plain, []Stage{&Regex{Expression: `^(?P<date>\S+ \S+) (?P<level>[A-Z]+) `}}},
		{"docker", dockerLines, []Stage{&Docker{}}},
		{"cri", criLines, []Stage{&CRI{}}},
		{"static_labels", plain, []Stage{&StaticLabels{Values: map[string]string{"env": "prod"}}}},
		{"label_drop", plain, []Stage{&LabelDrop{Names: []string{"host"}}}},
		{"drop-regex", plain, []Stage{&Drop{Expression: "DEBUG"}}},
		{"match", plain, []Stage{&Match{Selector: `{job="bench"}`, Stages: []Stage{&StaticLabels{Values: map[string]string{"m": "y"}}}}}},
		{"decolorize", colour, []Stage{&Decolorize{}}},
		{"replace", plain, []Stage{&Replace{Expression: `request (\d+)`, Replace: "request *"}}},
		{"multiline", multi, []Stage{&Multiline{FirstLine: `^\d{4}-`, MaxWait: time.Hour}}},
		{"limit-drop", plain, []Stage{&Limit{Rate: 1e12, Burst: 1 << 30, Drop: true}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := started(b, nil, tc.stages...)
			work := make([]ferry.Entry, n)
			ctx := context.Background()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			start := time.Now()
			for b.Loop() {
				copy(work, tc.in)
				out, _ := p.Process(ctx, ferry.Batch[ferry.Entry]{Items: work[:n]})
				out.Done(nil)
			}
			el := time.Since(start)
			runtime.ReadMemStats(&m1)
			total := float64(b.N) * n
			b.ReportMetric(total/el.Seconds(), "entries/s")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/total, "allocs/entry")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/total, "B/entry")
		})
	}
}
