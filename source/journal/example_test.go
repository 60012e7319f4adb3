package journal_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/journal"
	"github.com/prometheus/prometheus/model/labels"
)

// The Decoder reads journalctl's export format.
func ExampleDecoder() {
	export := "__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1700000000000000\nMESSAGE=started\n_SYSTEMD_UNIT=ssh.service\n\n" +
		"__CURSOR=s=1;i=2\nMESSAGE\n\x0b\x00\x00\x00\x00\x00\x00\x00two\nlines!!\n\n"
	d := journal.NewDecoder(strings.NewReader(export))
	for {
		rec, err := d.Next()
		if err != nil {
			break
		}
		fmt.Printf("%s %q\n", rec.Get("__CURSOR"), rec.Get("MESSAGE"))
	}
	// Output:
	// s=1;i=1 "started"
	// s=1;i=2 "two\nlines!!"
}

// A Source follows the journal through journalctl. Here a stand-in
// journalctl prints one entry, so that the example runs anywhere with a
// shell.
func Example() {
	dir, _ := os.MkdirTemp("", "journal-example")
	defer os.RemoveAll(dir)
	fake := filepath.Join(dir, "journalctl")
	os.WriteFile(fake, []byte("#!/bin/sh\nprintf '__CURSOR=c1\\n__REALTIME_TIMESTAMP=1700000000000000\\nPRIORITY=3\\n_SYSTEMD_UNIT=ssh.service\\nMESSAGE=Failed password\\n\\n'\nexec sleep 60\n"), 0o755)

	src := &journal.Source{
		Journalctl: fake, // usually left empty: journalctl from PATH
		Matches:    []string{"_SYSTEMD_UNIT=ssh.service"},
		Labels:     labels.FromStrings("job", "systemd-journal"),
	}
	src.Start(context.Background(), ferry.NopReporter())
	defer src.Close(context.Background())
	out := make(chan ferry.Batch[ferry.Entry], 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, out) }()

	b := <-out
	for _, e := range b.Items {
		fmt.Println(e.Timestamp.UTC().Format("2006-01-02T15:04:05Z"), e.Labels.Get("__journal__systemd_unit"),
			e.Labels.Get("__journal_priority_keyword"), e.Line)
	}
	b.Done(nil) // delivered: the cursor advances
	fmt.Println(src.Cursor())
	cancel()
	<-done
	// Output:
	// 2023-11-14T22:13:20Z ssh.service error Failed password
	// c1 true
}
