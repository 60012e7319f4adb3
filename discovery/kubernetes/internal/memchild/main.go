// Command memchild runs one pod discoverer of discovery/kubernetes, and
// nothing else, so that its resident memory can be measured apart from a
// test binary's: discovery/kubernetes's memory benchmarks build it with
// go build and start it as a child.
//
// It reads target counts from stdin, one per line; for each it waits until
// the discoverer sent a set of that many targets (and keeps it, as a
// consumer keeps the last set in force) and prints
//
//	STAT targets=<n> rss=<bytes> hwm=<bytes> anon=<bytes> file=<bytes> heap=<bytes> ms=<since start>
//
// with VmRSS, VmHWM (the peak RSS since the start or the previous STAT
// line), RssAnon and RssFile (the binary's pages) of /proc/self/status and
// the Go heap in use after a collection.
// After each line it resets the peak (clear_refs 5), so the peak of every
// phase is its own. It exits when stdin ends.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	server := flag.String("server", "", "API server URL (without kubeconfig)")
	node := flag.String("node", "", "NodeName")
	attachNode := flag.Bool("attach-node", false, "AttachMetadata.Node")
	profile := flag.String("profile", "", "at the end, write a heap profile to <profile>.heap and /proc/self/smaps to <profile>.smaps")
	flag.Parse()
	if err := run(*kubeconfig, *server, *node, *attachNode, *profile); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
}

func run(kubeconfig, server, node string, attachNode bool, profile string) error {
	begin := time.Now()
	d := &kubernetes.Discoverer{KubeConfig: kubeconfig, APIServer: server, NodeName: node,
		AttachMetadata: kubernetes.AttachMetadata{Node: attachNode},
		UpdateDelay:    50 * time.Millisecond, FirstSetTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Start(ctx, ferry.NopReporter()); err != nil {
		return err
	}
	up := make(chan []labels.Labels)
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx, up) }()

	// The last set is kept, as every consumer keeps it in force.
	var last []labels.Labels
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		want, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
		for first := last == nil; first || len(last) != want; first = false {
			select {
			case last = <-up:
			case err := <-errc:
				return fmt.Errorf("discoverer ended: %v", err)
			}
		}
		runtime.KeepAlive(last)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := status()
		fmt.Printf("STAT targets=%d rss=%d hwm=%d anon=%d file=%d heap=%d ms=%d heapUnreleased=%d stacks=%d runtime=%d goroutines=%d\n",
			want, st["VmRSS"], st["VmHWM"], st["RssAnon"], st["RssFile"], ms.HeapInuse, time.Since(begin).Milliseconds(),
			ms.HeapIdle-ms.HeapReleased, ms.StackSys, ms.MSpanSys+ms.MCacheSys+ms.BuckHashSys+ms.GCSys+ms.OtherSys, runtime.NumGoroutine())
		// Reset the peak for the next phase.
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	}
	if profile != "" {
		smaps, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			return err
		}
		if err := os.WriteFile(profile+".smaps", smaps, 0o644); err != nil {
			return err
		}
		f, err := os.Create(profile + ".heap")
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("heap").WriteTo(f, 0)
	}
	return nil
}

// status returns the sizes (in bytes) of /proc/self/status.
func status() map[string]int64 {
	m := map[string]int64{}
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(l, ":")
		if v, isKB := strings.CutSuffix(strings.TrimSpace(v), " kB"); ok && isKB {
			kb, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			m[name] = kb << 10
		}
	}
	return m
}
