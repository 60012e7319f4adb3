package loki

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/prometheus/prometheus/model/labels"
)

func TestVictoriaLogsEndToEnd(t *testing.T) {
	vl := peers.StartVictoriaLogs(t)
	now := time.Now().Truncate(time.Microsecond).UTC()
	for _, enc := range []Encoding{Protobuf, JSON} {
		name := map[Encoding]string{Protobuf: "protobuf", JSON: "json"}[enc]
		t.Run(name, func(t *testing.T) {
			rep := newTestReporter()
			ctx := ferry.WithReporter(context.Background(), rep)
			s := started(t, &Sink{
				URL:            vl.PushURL(),
				Encoding:       enc,
				BatchWait:      50 * time.Millisecond,
				BatchBytes:     4096,
				ExternalLabels: labels.FromStrings("cluster", "c1"),
			}, rep)
			const n = 300
			acks := newAckRecorder()
			var items []ferry.Entry
			for i := range n {
				items = append(items, ferry.Entry{
					Labels:    labels.FromStrings("app", "e2e", "enc", name, "shard", fmt.Sprint(i%3), "__internal", "x"),
					Timestamp: now.Add(time.Duration(i) * time.Millisecond),
					Line:      fmt.Sprintf("line %d of %s \"quoted\" ✓", i, name),
					Metadata:  labels.FromStrings("trace_id", fmt.Sprintf("t%d", i)),
				})
				if len(items) == 50 {
					if err := s.Send(ctx, acks.batch(items)); err != nil {
						t.Fatal(err)
					}
					items = nil
				}
			}
			for range n / 50 {
				if err := acks.wait(t, 10*time.Second); err != nil {
					t.Fatalf("ack: %v\n%s", err, rep.Logs())
				}
			}
			closeSink(t, s)

			rows := vl.Query(t, fmt.Sprintf(`enc:=%q | sort by (_time)`, name))
			if len(rows) != n {
				t.Fatalf("VictoriaLogs returned %d rows, want %d", len(rows), n)
			}
			for i, row := range rows {
				wantLine := fmt.Sprintf("line %d of %s \"quoted\" ✓", i, name)
				ts, err := time.Parse(time.RFC3339Nano, row["_time"])
				if err != nil {
					t.Fatal(err)
				}
				if row["_msg"] != wantLine || !ts.Equal(now.Add(time.Duration(i)*time.Millisecond)) {
					t.Errorf("row %d: %q at %v, want %q at %v", i, row["_msg"], ts, wantLine, now.Add(time.Duration(i)*time.Millisecond))
				}
				wantStream := fmt.Sprintf(`{app="e2e",cluster="c1",enc=%q,shard="%d"}`, name, i%3)
				if row["_stream"] != wantStream {
					t.Errorf("row %d: stream %s, want %s", i, row["_stream"], wantStream)
				}
				if row["trace_id"] != fmt.Sprintf("t%d", i) {
					t.Errorf("row %d: trace_id %q (structured metadata lost): %v", i, row["trace_id"], row)
				}
				if _, ok := row["__internal"]; ok {
					t.Errorf("row %d: internal label sent", i)
				}
				if i > 3 && !strings.Contains(row["_msg"], "✓") {
					t.Errorf("row %d: UTF-8 mangled", i)
				}
			}
		})
	}
}
