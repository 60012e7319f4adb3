// Package dockertest runs real Docker containers for tests, without pulling
// anything: it compiles a tiny static logger program, imports it as an image
// through the engine API and starts containers from it.
//
// Typical use:
//
//	func TestMain(m *testing.M) { dockertest.Main(m) } // removes the image at the end
//
//	func TestLogs(t *testing.T) {
//		c := dockertest.Client(t) // skips when no engine is reachable
//		id := dockertest.Run(t, c, dockertest.Spec{Lines: 100, Stderr: true})
//		...
//	}
//
// Client skips the test with a clear message when no Docker engine answers,
// unless the environment sets FERRY_REQUIRE_PEERS=1 (as CI does), in which
// case the test fails instead. Every container started here is removed by
// t.Cleanup; the image is removed by Main when the test binary ends.
//
// The logger program prints Lines lines "r<run> l<i> <stream>" (run counts
// the starts of the container, so lines stay unique across restarts), on
// stdout, or alternating stdout/stderr with Stderr; with Long, each line is
// padded with 'x' to that many bytes; Sleep waits between lines; Loop
// repeats forever (until the container is stopped).
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// NewClient connects to the engine the environment names (DOCKER_HOST and
// friends, else the local socket), checks that it answers and negotiates the
// API version, so that the client is safe to share between goroutines.
func NewClient(ctx context.Context) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	// Negotiate now, on one goroutine: the client reads the version
	// unsynchronised on some calls, and racing the lazy negotiation of a
	// concurrent first call trips the race detector.
	c.NegotiateAPIVersion(ctx)
	return c, nil
}

// Client returns a client of the local Docker engine. When none is
// reachable it skips t, or fails it if FERRY_REQUIRE_PEERS=1. The client is
// closed by t.Cleanup.
func Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := NewClient(context.Background())
	if err != nil {
		msg := fmt.Sprintf("no Docker engine reachable (set DOCKER_HOST or start dockerd): %v", err)
		if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// imageName is the repository of the logger image; each process tags its
// own import uniquely, so that parallel test binaries do not remove each
// other's image.
const imageName = "ferry-dockertest-logger"

// Image builds and imports the logger image once per process and returns its
// reference ("ferry-dockertest-logger:<unique tag>"). It fails t if that is
// not possible.
func Image(t testing.TB, c *client.Client) string {
	t.Helper()
	imageOnce.Do(func() { imageRef, imageErr = buildImage(c) })
	if imageErr != nil {
		t.Fatalf("dockertest: building the logger image: %v", imageErr)
	}
	return imageRef
}

// Main runs the tests of a package and then removes the logger image, if
// one was imported. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if imageRef != "" {
		if c, err := NewClient(context.Background()); err == nil {
			c.ImageRemove(context.Background(), imageRef, image.RemoveOptions{Force: true, PruneChildren: true})
			c.Close()
		}
	}
	os.Exit(code)
}

// Spec describes a logger container.
type Spec struct {
	// Name is the container name; empty lets Docker choose one.
	Name string
	// Lines is the number of lines per run.
	Lines int
	// Stderr alternates lines between stdout (even i) and stderr (odd i).
	Stderr bool
	// TTY allocates a terminal: the log is one raw stream.
	TTY bool
	// Long pads every line with 'x' to this many bytes (0: no padding).
	Long int
	// Sleep is the pause between lines.
	Sleep time.Duration
	// Loop repeats the lines forever, with Sleep between them.
	Loop bool
	// Wait is a pause before the first line, so that a reader can attach.
	Wait time.Duration
	// Labels are the container labels.
	Labels map[string]string
	// NoStart creates the container without starting it.
	NoStart bool
	// Ports are exposed ports such as "8080/tcp" or "53/udp"; with Publish
	// each is published on a random port of 127.0.0.1.
	Ports   []string
	Publish bool
	// NetworkMode is "bridge" (the default), "host", "none",
	// "container:<id>" or the name of a network.
	NetworkMode string
	// LogOpts are json-file options such as "max-size"; the daemon's
	// defaults apply to those not given.
	LogOpts map[string]string
}

// Run creates (and, unless NoStart, starts) a logger container and returns
// its ID. t.Cleanup removes it forcibly.
func Run(t testing.TB, c *client.Client, s Spec) string {
	t.Helper()
	Image(t, c)
	id, err := Start(context.Background(), c, s)
	if id != "" {
		t.Cleanup(func() { Remove(c, id) })
	}
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return id
}

// Start is Run for code without a testing.TB, such as examples: it builds
// the image if needed, creates and (unless NoStart) starts the container.
// The caller removes it (Remove). On a start error the ID is still returned.
func Start(ctx context.Context, c *client.Client, s Spec) (string, error) {
	imageOnce.Do(func() { imageRef, imageErr = buildImage(c) })
	if imageErr != nil {
		return "", fmt.Errorf("building the logger image: %w", imageErr)
	}
	cmd := []string{"/logger", "-n", strconv.Itoa(s.Lines)}
	if s.Stderr {
		cmd = append(cmd, "-stderr")
	}
	if s.Long > 0 {
		cmd = append(cmd, "-long", strconv.Itoa(s.Long))
	}
	if s.Sleep > 0 {
		cmd = append(cmd, "-sleep", s.Sleep.String())
	}
	if s.Loop {
		cmd = append(cmd, "-loop")
	}
	if s.Wait > 0 {
		cmd = append(cmd, "-wait", s.Wait.String())
	}
	cfg := &container.Config{Image: imageRef, Cmd: cmd, Tty: s.TTY, Labels: s.Labels}
	host := &container.HostConfig{LogConfig: container.LogConfig{Type: "json-file", Config: s.LogOpts}, NetworkMode: container.NetworkMode(s.NetworkMode)}
	if len(s.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		host.PortBindings = nat.PortMap{}
		for _, p := range s.Ports {
			port := nat.Port(p)
			cfg.ExposedPorts[port] = struct{}{}
			if s.Publish {
				host.PortBindings[port] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: "0"}}
			}
		}
	}
	res, err := c.ContainerCreate(ctx, cfg, host, nil, nil, s.Name)
	if err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	if !s.NoStart {
		if err := c.ContainerStart(ctx, res.ID, container.StartOptions{}); err != nil {
			return res.ID, fmt.Errorf("start: %w", err)
		}
	}
	return res.ID, nil
}

// Remove removes a container forcibly, ignoring errors.
func Remove(c *client.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
}

// WaitExit waits until the container is no longer running and returns its
// exit code.
func WaitExit(t testing.TB, c *client.Client, id string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	okc, errc := c.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case r := <-okc:
		return r.StatusCode
	case err := <-errc:
		t.Fatalf("dockertest: wait %s: %v", id, err)
	}
	return -1
}

// Line returns the text the logger prints as line i of run r (1-based) of
// a container with spec s, without the newline.
func Line(s Spec, run, i int) string {
	stream := "out"
	if s.Stderr && i%2 == 1 {
		stream = "err"
	}
	l := fmt.Sprintf("r%d l%d %s", run, i, stream)
	if s.Long > len(l) {
		l += " " + strings.Repeat("x", s.Long-len(l)-1)
	}
	return l
}

// IsStderr reports whether line i of a container with spec s goes to stderr.
func IsStderr(s Spec, i int) bool { return s.Stderr && i%2 == 1 }

func buildImage(c *client.Client) (string, error) {
	dir, err := os.MkdirTemp("", "ferry-dockertest-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(loggerSource), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module logger\n\ngo 1.21\n"), 0o644); err != nil {
		return "", err
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", "logger", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "logger"))
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"tmp/", "dev/", "proc/", "sys/", "etc/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o1777}); err != nil {
			return "", err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "logger", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return "", err
	}
	if _, err := tw.Write(bin); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := fmt.Sprintf("%s:%d-%d", imageName, os.Getpid(), time.Now().UnixNano())
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{`CMD ["/logger"]`}})
	if err != nil {
		return "", err
	}
	out, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return "", err
	}
	if bytes.Contains(out, []byte(`"error"`)) {
		return "", fmt.Errorf("import: %s", out)
	}
	return ref, nil
}

const loggerSource = `package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 10, "lines")
	stderr := flag.Bool("stderr", false, "alternate stdout and stderr")
	long := flag.Int("long", 0, "pad lines to this length")
	sleep := flag.Duration("sleep", 0, "pause between lines")
	wait := flag.Duration("wait", 0, "pause before the first line")
	loop := flag.Bool("loop", false, "repeat forever")
	flag.Parse()
	run := 1
	if b, err := os.ReadFile("/tmp/run"); err == nil {
		run, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		run++
	}
	os.WriteFile("/tmp/run", []byte(strconv.Itoa(run)), 0o644)
	time.Sleep(*wait)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	for {
		for i := 0; i < *n; i++ {
			w, stream := out, "out"
			if *stderr && i%2 == 1 {
				w, stream = errw, "err"
			}
			l := fmt.Sprintf("r%d l%d %s", run, i, stream)
			if *long > len(l) {
				l += " " + strings.Repeat("x", *long-len(l)-1)
			}
			w.WriteString(l)
			w.WriteByte('\n')
			if *sleep > 0 || *stderr {
				w.Flush()
			}
			if *sleep > 0 {
				time.Sleep(*sleep)
			}
		}
		out.Flush()
		errw.Flush()
		if !*loop {
			return
		}
	}
}
`
