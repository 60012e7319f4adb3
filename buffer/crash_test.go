package buffer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/prometheus/prometheus/model/labels"
)

// crashReceiver is the inner sink of the crash test: it appends the lines
// it is sent to dir/received and acknowledges them later, out of order,
// failing one batch in ten with a retryable error, as a flaky receiver
// would.
func crashReceiver(t testing.TB, dir string) *sinktest.Sink[ferry.Entry] {
	recv, err := os.OpenFile(filepath.Join(dir, "received"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	return &sinktest.Sink[ferry.Entry]{SendFunc: func(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
		go func() {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			if rand.IntN(10) == 0 {
				b.Done(errors.New("503 service unavailable"))
				return
			}
			var buf bytes.Buffer
			for _, e := range b.Items {
				buf.WriteString(e.Line)
				buf.WriteByte('\n')
			}
			mu.Lock()
			recv.Write(buf.Bytes())
			mu.Unlock()
			b.Done(nil)
		}()
		return nil
	}}
}

func crashOptions() Options {
	return Options{MaxBytes: 256 << 20, SegmentBytes: 64 << 10, SyncInterval: 20 * time.Millisecond, MaxInFlight: 8,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
}

// TestCrashChild is the agent TestCrashKill9 runs and kills: it writes
// numbered lines through a buffer as fast as it can and prints the ranges
// the buffer acknowledged.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("FERRY_BUFFER_CRASH_DIR")
	if dir == "" {
		t.Skip("the child process of TestCrashKill9")
	}
	first, _ := strconv.Atoi(os.Getenv("FERRY_BUFFER_CRASH_FIRST"))
	d := Wrap(filepath.Join(dir, "buf"), crashReceiver(t, dir), crashOptions())
	if err := d.Start(context.Background(), newReporter()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	lbls := labels.FromStrings("job", "crash")
	for i := first; ; i += 10 {
		items := make([]ferry.Entry, 10)
		for j := range items {
			items[j] = ferry.Entry{Labels: lbls, Timestamp: time.Now(), Line: crashLine(i + j)}
		}
		from := i
		d.Send(context.Background(), ferry.NewBatch(items, func(err error) {
			if err == nil {
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %d\n", from, from+10)
				mu.Unlock()
			}
		}))
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // about 100k lines/s at most
		}
	}
}

func crashLine(i int) string { return fmt.Sprintf("crash line %09d", i) }

// TestCrashKill9 runs TestCrashChild in a child process and kills it with
// SIGKILL at random moments, while it writes and while it replays, 20 times
// (200 with FERRY_BUFFER_CRASH_LONG=1). Then it replays what is left and
// checks that every line the buffer acknowledged reached the receiver at
// least once, and that duplicates stay within what was in flight.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	kills, maxRun := 20, 300
	if os.Getenv("FERRY_BUFFER_CRASH_LONG") == "1" {
		kills, maxRun = 200, 2000
	}
	if v, err := strconv.Atoi(os.Getenv("FERRY_BUFFER_CRASH_KILLS")); err == nil {
		kills = v
	}
	if v, err := strconv.Atoi(os.Getenv("FERRY_BUFFER_CRASH_MAXRUN")); err == nil {
		maxRun = v
	}
	dir := t.TempDir()
	acked := map[int]bool{}
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FERRY_BUFFER_CRASH_DIR="+dir, "FERRY_BUFFER_CRASH_FIRST="+strconv.Itoa(k*10_000_000))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		firstAck := make(chan struct{})
		parsed := make(chan struct{})
		go func() {
			defer close(parsed)
			sc := bufio.NewScanner(stdout)
			seen := false
			for sc.Scan() {
				var from, to int
				if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &from, &to); err == nil {
					for i := from; i < to; i++ {
						acked[i] = true
					}
					if !seen {
						seen = true
						close(firstAck)
					}
				}
			}
		}()
		// A random moment: odd runs are killed early, during the recovery
		// and replay of the previous run's backlog; even runs once they
		// write, some time after their first acknowledgement.
		delay := time.Duration(5+rand.IntN(100)) * time.Millisecond
		if k%2 == 0 {
			select {
			case <-firstAck:
			case <-time.After(60 * time.Second):
				t.Fatalf("child %d: no acknowledgement in 60s\n%s", k, stderr.String())
			}
			delay = time.Duration(rand.IntN(maxRun)) * time.Millisecond
		}
		select {
		case <-parsed:
			t.Fatalf("child %d exited early\n%s", k, stderr.String())
		case <-time.After(delay):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-parsed
		cmd.Wait()
	}
	if len(acked) == 0 {
		t.Fatal("no batch was ever acknowledged")
	}
	// Drain what is left, in this process.
	d := Wrap(filepath.Join(dir, "buf"), crashReceiver(t, dir), crashOptions())
	start(t, d)
	// The backlog of the long variant is millions of lines: wait as long
	// as the replay makes progress.
	for last, since := int64(-1), time.Now(); d.Stats().Records > 0; time.Sleep(10 * time.Millisecond) {
		if s := d.Stats(); s.Acked != last {
			last, since = s.Acked, time.Now()
		} else if time.Since(since) > 20*time.Second {
			t.Fatalf("replay stalled: %+v", s)
		}
	}
	d.Close(context.Background())

	data, err := os.ReadFile(filepath.Join(dir, "received"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for _, line := range strings.Split(string(data), "\n") {
		// A line cut by a kill in the middle of a write is not counted
		// (its full copy comes again, since it was not acknowledged).
		if n, ok := strings.CutPrefix(line, "crash line "); ok && len(n) >= 9 {
			if i, err := strconv.Atoi(n); err == nil {
				got[i]++
			}
		}
	}
	lost, dups, received := 0, 0, 0
	for i := range acked {
		if got[i] == 0 {
			lost++
		}
	}
	for _, c := range got {
		received += c
		dups += c - 1
	}
	t.Logf("%d kills: %d lines acknowledged, %d distinct received, %d deliveries, %d duplicates, %d lost",
		kills, len(acked), len(got), received, dups, lost)
	if lost > 0 {
		ids, _ := listSegments(filepath.Join(dir, "buf"))
		var left int64
		for _, id := range ids {
			if fi, err := os.Stat(segName(filepath.Join(dir, "buf"), id)); err == nil {
				left += fi.Size()
			}
		}
		t.Logf("segments left: %d, %d bytes; stats %+v", len(ids), left, d.Stats())
		t.Fatalf("%d acknowledged lines lost", lost)
	}
	// What a kill can duplicate: the records in flight to the receiver
	// (MaxInFlight records of 10 lines) and the records acknowledged since
	// the marker was last saved (one SyncInterval, at most about 2,000
	// lines at the child's pace).
	if bound := kills * (8*10 + 2000); dups > bound {
		t.Fatalf("%d duplicates, more than %d", dups, bound)
	}
}
