package loki

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

// victoriaLogs starts the VictoriaLogs binary named by FERRY_VICTORIALOGS_BIN
// (built by scripts/setup/victorialogs.sh) on a free 127.0.0.1 port with a
// temporary storage directory, and returns its base URL. It is stopped when
// the test ends.
func victoriaLogs(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("FERRY_VICTORIALOGS_BIN")
	if bin == "" {
		if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
			t.Fatal("FERRY_VICTORIALOGS_BIN is not set; run scripts/setup/victorialogs.sh")
		}
		t.Skip("FERRY_VICTORIALOGS_BIN is not set; run scripts/setup/victorialogs.sh (or scripts/test.sh) to build VictoriaLogs")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
			t.Fatalf("FERRY_VICTORIALOGS_BIN: %v", err)
		}
		t.Skipf("FERRY_VICTORIALOGS_BIN: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin,
		"-httpListenAddr="+addr,
		"-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y",
		"-loggerLevel=WARN",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("VictoriaLogs did not become ready on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// queryLogs runs a LogsQL query and returns the rows.
func queryLogs(t *testing.T, base, q string) []map[string]string {
	t.Helper()
	if resp, err := http.Get(base + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.PostForm(base+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("query %q: status %d", q, resp.StatusCode)
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("query row %q: %v", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows
}

func TestVictoriaLogsEndToEnd(t *testing.T) {
	base := victoriaLogs(t)
	now := time.Now().Truncate(time.Microsecond).UTC()
	for _, enc := range []Encoding{Protobuf, JSON} {
		name := map[Encoding]string{Protobuf: "protobuf", JSON: "json"}[enc]
		t.Run(name, func(t *testing.T) {
			rep := newTestReporter()
			ctx := ferry.WithReporter(context.Background(), rep)
			s := &Sink{
				URL:            base + "/insert/loki/api/v1/push",
				Encoding:       enc,
				BatchWait:      50 * time.Millisecond,
				BatchSize:      4096,
				ExternalLabels: labels.FromStrings("cluster", "c1"),
			}
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

			rows := queryLogs(t, base, fmt.Sprintf(`enc:=%q | sort by (_time)`, name))
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
