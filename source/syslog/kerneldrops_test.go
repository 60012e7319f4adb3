//go:build linux

package syslog

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
)

// A burst sent while the Source is not reading overflows the small
// receive buffer; the datagrams the kernel dropped are counted under
// kernel_buffer_full, exactly: dropped = sent - received.
func TestUDPKernelDrops(t *testing.T) {
	s := &Source{Addr: "127.0.0.1:0", Protocol: UDP, ReadBuffer: 4096, DisableHostnameLookup: true, Name: "udp-test"}
	rep := newReporter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx, rep); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if !s.udpOvfl {
		t.Skip("the kernel does not report drops (SO_RXQ_OVFL)")
	}
	c := dial(t, "udp", s.LocalAddr())
	pad := strings.Repeat("x", 200)
	const burst = 1000
	sent := 0
	for i := 0; i < burst; i++ {
		fmt.Fprintf(c, "<14>1 - h app - - - burst %d %s", i, pad)
		sent++
	}
	// Now read: everything that was queued, then markers until one comes
	// through (the first may still find the buffer full). The last marker
	// carries the kernel's final count.
	out := make(chan ferry.Batch[ferry.Entry], 1024)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	var mu sync.Mutex
	received, markers := 0, map[string]bool{}
	go func() {
		for b := range out {
			mu.Lock()
			for _, e := range b.Items {
				received++
				if strings.HasPrefix(e.Line, "marker") {
					markers[e.Line] = true
				}
			}
			mu.Unlock()
			b.Done(nil)
		}
	}()
	for k := 0; ; k++ {
		if k == 100 {
			t.Fatal("no marker arrived")
		}
		m := fmt.Sprintf("marker %d", k)
		fmt.Fprintf(c, "<14>1 - h app - - - %s", m)
		sent++
		if poll.Wait(time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return markers[m] }) {
			break
		}
	}
	mu.Lock()
	got := received
	mu.Unlock()
	dropped := int(s.Stats().Dropped[ReasonKernelBufferFull])
	t.Logf("sent %d, received %d, kernel dropped %d", sent, got, dropped)
	if got >= burst {
		t.Fatalf("received all %d of the burst: the buffer did not overflow", got)
	}
	if dropped != sent-got {
		t.Errorf("kernel_buffer_full = %d, want sent-received = %d-%d = %d", dropped, sent, got, sent-got)
	}
	if d := rep.drops(ReasonKernelBufferFull); d != dropped {
		t.Errorf("reported %d drops, counted %d", d, dropped)
	}
	if v := metric(t, s, "ferry_syslog_dropped_messages_total", "reason=kernel_buffer_full", "source=udp-test"); int(v) != dropped {
		t.Errorf("metric = %v, want %d", v, dropped)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestParseRxqOvfl(t *testing.T) {
	if _, ok := parseRxqOvfl(nil); ok {
		t.Error("found a count in nothing")
	}
	if _, ok := parseRxqOvfl(make([]byte, 7)); ok {
		t.Error("found a count in a short buffer")
	}
	// A header whose length runs past the buffer.
	b := make([]byte, oobSize)
	b[0] = 0xff
	if _, ok := parseRxqOvfl(b); ok {
		t.Error("found a count past the buffer")
	}
}
