package journal

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/ferrydev/ferry/internal/peers"
)

// BenchmarkJournal reads a journal of 20,000 entries (1,000,000 with
// FERRY_JOURNAL_BENCH=1) written by systemd-journal-remote, through the
// Source, and reports entries/s next to the baseline: journalctl -o export
// of the same journal into /dev/null, the cost of the process and format
// the Source builds on. Run it with -benchtime=1x for the large journal.
func BenchmarkJournal(b *testing.B) {
	remote := peers.Bin(b, "FERRY_JOURNAL_REMOTE_BIN", "scripts/setup/journal.sh")
	jctl := peers.Bin(b, "FERRY_JOURNALCTL_BIN", "scripts/setup/journal.sh")
	n := 20000
	if os.Getenv("FERRY_JOURNAL_BENCH") == "1" {
		n = 1000000
	}
	dir := b.TempDir()
	base := time.Now().Add(-24 * time.Hour)
	// journal-remote is fed in chunks, one file each, to bound the
	// memory of the export text.
	const chunk = 100000
	for first := 0; first < n; first += chunk {
		last := min(first+chunk, n) - 1
		writeJournal(b, remote, dir, "part-"+strconv.Itoa(first)+".journal", journalExport(first, last, base))
	}
	// The journal must hold every entry (journal-remote rotates files
	// that fill up; all of them are in dir).
	cmd := exec.Command(jctl, "--directory="+dir, "--output=cat", "--no-pager")
	outText, err := cmd.Output()
	if err != nil {
		b.Fatal(err)
	}
	if got := bytes.Count(outText, []byte("\n")); got != n {
		b.Fatalf("journal holds %d entries, want %d", got, n)
	}
	b.Run("baseline-journalctl-export", func(b *testing.B) {
		for b.Loop() {
			cmd := exec.Command(jctl, "--directory="+dir, "--output=export", "--no-pager")
			devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			cmd.Stdout = devnull
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			devnull.Close()
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("source", func(b *testing.B) {
		b.ReportAllocs()
		batches := 0
		cpu0 := cpuclock.Process()
		for b.Loop() {
			s := &Source{Journalctl: jctl, Directory: dir, MaxAge: -1}
			if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
				b.Fatal(err)
			}
			out := make(chan ferry.Batch[ferry.Entry], 8)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx, out) }()
			got := 0
			for got < n {
				select {
				case bt := <-out:
					got += len(bt.Items)
					batches++
					bt.Done(nil)
				case err := <-done:
					b.Fatalf("Run: %v after %d entries", err, got)
				}
			}
			cancel()
			<-done
			s.Close(context.Background())
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(float64(n*b.N)/float64(batches), "entries/batch")
		// This process only: journalctl's CPU is its own.
		b.ReportMetric(float64(n*b.N)/(cpuclock.Process()-cpu0).Seconds(), "entries/cpu-s")
	})
}
