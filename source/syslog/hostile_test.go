package syslog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestHostileInput throws random bytes, 1 MiB messages, many idle
// connections and slowloris senders at a TCP Source, and checks that it
// keeps serving well-behaved senders, that idle ones are closed, and that
// its memory stays bounded. FERRY_SYSLOG_IDLE_CONNS sets the number of
// idle connections (default 300; 10000 for the full run, if the file
// descriptor limit can be raised that far).
func TestHostileInput(t *testing.T) {
	idle := 300
	if v := os.Getenv("FERRY_SYSLOG_IDLE_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		idle = n
	}
	idle = raiseFDLimit(t, idle)

	const maxLen = 16 << 10
	r := startSource(t, &Source{
		MaxMessageLength: maxLen, MaxConnections: idle + 100, IdleTimeout: 2*time.Second + time.Duration(idle)*time.Millisecond,
		DisableHostnameLookup: true,
	}, 64)
	addr := r.s.LocalAddr()
	// Drain the pipeline in the background, counting what arrives.
	type seen struct{ probes, total int }
	counts := make(chan seen, 1)
	stopDrain := make(chan struct{})
	go func() {
		var s seen
		for {
			select {
			case b := <-r.out:
				for _, e := range b.Items {
					s.total++
					if bytes.HasPrefix([]byte(e.Line), []byte("probe ")) {
						s.probes++
					}
				}
				b.Done(nil)
			case counts <- s:
			case <-stopDrain:
				return
			}
		}
	}()
	defer close(stopDrain)
	probesSeen := func() int { return (<-counts).probes }
	probe := func(i int) {
		t.Helper()
		c := dial(t, "tcp", addr)
		fmt.Fprintf(c, "<13>1 - h a - - - probe %d\n", i)
		c.Close()
		waitFor(t, fmt.Sprintf("probe %d", i), func() bool { return probesSeen() >= i+1 })
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// Random bytes, on several connections.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 8; i++ {
		c := dial(t, "tcp", addr)
		junk := make([]byte, 256<<10)
		for j := range junk {
			junk[j] = byte(rng.UintN(256))
		}
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	probe(0)

	// 1 MiB messages, newline-framed and octet-counted.
	big := bytes.Repeat([]byte("B"), 1<<20)
	c := dial(t, "tcp", addr)
	fmt.Fprintf(c, "<13>1 - h a - - - %s\n", big)
	fmt.Fprintf(c, "%d <13>1 - h a - - - %s", len(big)+18, big)
	fmt.Fprintf(c, "<13>1 - h a - - - probe 1\n")
	c.Close()
	waitFor(t, "probe 1", func() bool { return probesSeen() >= 2 })
	if st := r.s.Stats(); st.Truncated < 2 {
		t.Errorf("truncated = %d, want >= 2", st.Truncated)
	}

	// Idle connections and slowloris senders (one byte at a time).
	accepted := r.s.Stats().Accepted
	conns := make([]net.Conn, 0, idle)
	for i := 0; i < idle; i++ {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	waitWithin(t, 60*time.Second, "idle connections accepted", func() bool { return r.s.Stats().Accepted >= accepted+int64(idle) })
	slow := conns[:min(50, len(conns))]
	msg := []byte("<13>1 - h a - - - slow " + string(bytes.Repeat([]byte("s"), 64)))
	for k := 0; k < 20; k++ {
		for _, c := range slow {
			c.Write(msg[k : k+1])
		}
	}
	probe(2)

	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	// Each connection holds a goroutine and a small read buffer; allow 32
	// KiB per connection plus slack, far below MaxMessageLength per
	// connection times 1 MiB messages.
	limit := uint64(idle)*32<<10 + 32<<20
	if grew := int64(during.HeapInuse) - int64(before.HeapInuse); grew > int64(limit) {
		t.Errorf("heap grew by %d MiB with %d connections, limit %d MiB", grew>>20, idle, limit>>20)
	}
	t.Logf("heap in use: %d MiB before, %d MiB with %d open connections", before.HeapInuse>>20, during.HeapInuse>>20, r.s.Stats().Open)

	// The idle timeout closes all of them, slowloris included once it
	// stops.
	waitWithin(t, r.s.IdleTimeout+30*time.Second, "idle connections closed", func() bool { return r.s.Stats().Open == 0 })
	probe(3)
}

// raiseFDLimit raises RLIMIT_NOFILE for n connections (two descriptors
// each, client and server side) and returns how many fit.
func raiseFDLimit(t testing.TB, n int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return min(n, 100)
	}
	need := uint64(2*n + 256)
	if lim.Cur < need {
		lim.Cur = min(need, lim.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if fit := int((lim.Cur - 256) / 2); fit < n {
		t.Logf("file descriptor limit %d: testing %d idle connections instead of %d", lim.Cur, fit, n)
		return fit
	}
	return n
}
