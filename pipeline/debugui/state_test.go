package debugui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/buffer"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/reptest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// bufferPipeline returns a built pipeline whose sink "loki" is a disk
// buffer in front of a blocked inner sink, started and holding records
// batches of 10 entries that wait for the inner sink.
func bufferPipeline(t *testing.T, records int) (*pipeline.Pipeline, *buffer.Disk[ferry.Entry]) {
	t.Helper()
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.Block()
	d := buffer.Wrap(t.TempDir(), inner, buffer.Options{Name: "loki-buffer", MaxBytes: 1 << 20, SyncInterval: -1})
	b := pipeline.New(pipeline.WithLogger(slog.New(slog.DiscardHandler)))
	pipeline.To(b, "loki", d, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	// Started here rather than by Run: the page shows a pipeline at any
	// stage, and the buffer's state does not depend on it.
	if err := d.Start(context.Background(), &reptest.Reporter{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		d.Close(ctx)
	})
	for i := range records {
		items := make([]ferry.Entry, 10)
		for j := range items {
			items[j] = ferry.Entry{Labels: labels.FromStrings("job", "app"), Timestamp: time.Now(), Line: fmt.Sprintf("line %d.%d", i, j)}
		}
		if err := d.Send(context.Background(), ferry.NewBatch(items, nil)); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, func() bool { return d.Stats().Records == int64(records) && d.Stats().OldestAge > 0 }, "%d records waiting", records)
	return p, d
}

// The buffer's bytes, records, oldest record age, replay rate, drops and
// corruptions appear on its page, in its row of the index and in the JSON.
func TestHandlerBufferState(t *testing.T) {
	p, d := bufferPipeline(t, 7)
	h := debugui.Handler(p)
	st := d.Stats()
	if st.Bytes <= 0 || st.Records != 7 || st.Items != 70 {
		t.Fatalf("stats %+v", st)
	}

	page := get(t, h, "/component/loki?refresh=0").Body.String()
	for key, want := range map[string]string{
		"bytes":                   strconv.FormatInt(st.Bytes, 10),
		"records":                 "7",
		"items":                   "70",
		"dropped_items":           "0",
		"corruptions":             "0",
		"replay_items_per_second": "0",
		"policy":                  "block",
	} {
		if !strings.Contains(page, `data-key="`+key+`" data-value="`+want+`"`) {
			t.Errorf("component page lacks %s = %s:\n%s", key, want, page)
		}
	}
	if !strings.Contains(page, `data-key="oldest_record_age"`) || !strings.Contains(page, "<h2>State</h2>") {
		t.Errorf("component page lacks the oldest record age:\n%s", page)
	}
	// A component without state has no State section.
	if in := get(t, h, "/component/in?refresh=0").Body.String(); strings.Contains(in, "<h2>State</h2>") {
		t.Errorf("the source's page has a State section:\n%s", in)
	}

	index := get(t, h, "/?refresh=0").Body.String()
	row := index[strings.Index(index, `<tr data-component="loki"`):]
	row = row[:strings.Index(row, "</tr>")]
	for _, want := range []string{`title="` + strconv.FormatInt(st.Bytes, 10) + `">bytes `, `title="7">records 7`, `oldest_record_age `, `replay_items_per_second 0.0`} {
		if !strings.Contains(row, want) {
			t.Errorf("index row lacks %q:\n%s", want, row)
		}
	}

	var c struct {
		State map[string]any `json:"state"`
	}
	if err := json.Unmarshal(get(t, h, "/api/v1/components/loki").Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	if c.State["bytes"] != float64(st.Bytes) || c.State["records"] != float64(7) || c.State["corruptions"] != float64(0) {
		t.Errorf("JSON state %v, want bytes %d and 7 records", c.State, st.Bytes)
	}
	if _, err := time.ParseDuration(fmt.Sprint(c.State["oldest_record_age"])); err != nil {
		t.Errorf("JSON oldest_record_age %v: %v", c.State["oldest_record_age"], err)
	}
	var all struct {
		Components []struct {
			Name  string         `json:"name"`
			State map[string]any `json:"state"`
		} `json:"components"`
	}
	if err := json.Unmarshal(get(t, h, "/api/v1/components").Body.Bytes(), &all); err != nil {
		t.Fatal(err)
	}
	for _, c := range all.Components {
		if (c.State != nil) != (c.Name == "loki") || (c.State != nil && c.State["records"] != float64(7)) {
			t.Errorf("components JSON: %s has state %v", c.Name, c.State)
		}
	}
}
