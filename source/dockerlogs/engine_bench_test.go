package dockerlogs

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/ferrydev/ferry/internal/dockertest"
)

// BenchmarkEngineBacklog reads the log of a real container that wrote
// FERRY_BENCH_DOCKER_LINES lines (default 200,000) of 100 bytes and exited:
// the backlog an agent meets when it starts, or when a container writes
// faster than it is read. It reports the CPU time of this process per line
// (the engine's own time is not counted) for the Source, next to the floor
// measured in the same run: the same log requested through the same client
// and copied to io.Discard, with no framing, lines or batches.
//
//	go test -run '^$' -bench BenchmarkEngineBacklog -benchtime 5x ./source/dockerlogs
func BenchmarkEngineBacklog(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_DOCKER_LINES")); err == nil && v > 0 {
		n = v
	}
	c := dockertest.Client(b)
	// The log must not rotate under the daemon's defaults (this machine's
	// keep 3 × 10 MB): a rotated-away line would never come.
	id := dockertest.Run(b, c, dockertest.Spec{Lines: n, Long: 100, LogOpts: map[string]string{"max-size": "1g", "max-file": "1"}})
	if code := dockertest.WaitExit(b, c, id); code != 0 {
		b.Fatalf("logger exited with %d", code)
	}
	report := func(b *testing.B, cpu float64) {
		b.ReportMetric(float64(n*b.N)/cpu, "lines/cpu-s")
		b.ReportMetric(cpu*1e9/float64(n*b.N), "cpu-ns/line")
	}
	b.Run("floor=copy-the-stream", func(b *testing.B) {
		cpu0 := cpuclock.Process()
		for b.Loop() {
			rc, err := c.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
		report(b, (cpuclock.Process() - cpu0).Seconds())
	})
	b.Run("Source", func(b *testing.B) {
		cpu0 := cpuclock.Process()
		for b.Loop() {
			// A Source without positions reads the log from its start.
			readN(&Source{Client: c}, labels.FromStrings(docker.LabelContainerID, id, docker.LabelContainerName, "/backlog"), n)
		}
		report(b, (cpuclock.Process() - cpu0).Seconds())
	})
}
