package podlogs_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// kubelet writes container logs the way kubelet and containerd do: CRI
// lines under <root>/<ns>_<pod>_<uid>/<container>/<restart>.log, rotated
// by renaming to <restart>.log.<YYYYMMDD-hhmmss> and creating a new file;
// at each rotation the rotated files but the newest are gzipped, as
// kubelet's container log manager does.
type kubelet struct {
	t    testing.TB
	root string
	mu   sync.Mutex
	ts   time.Time
	rot  int
}

func newKubelet(t testing.TB, root string) *kubelet {
	return &kubelet{t: t, root: root, ts: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
}

type ctr struct{ ns, pod, uid, name, node string }

func (c ctr) dir(root string) string {
	return filepath.Join(root, c.ns+"_"+c.pod+"_"+c.uid, c.name)
}

// target returns the pod target Prometheus's kubernetes SD gives for the
// container (one per port; the tests add the same container twice to
// stand for two ports).
func (c ctr) target() labels.Labels {
	return labels.FromStrings(
		"__address__", "10.1.0.1:8080",
		"__meta_kubernetes_namespace", c.ns,
		"__meta_kubernetes_pod_name", c.pod,
		"__meta_kubernetes_pod_uid", c.uid,
		"__meta_kubernetes_pod_container_name", c.name,
		"__meta_kubernetes_pod_node_name", c.node,
		"__meta_kubernetes_pod_label_app", c.pod,
	)
}

func (k *kubelet) file(c ctr, restart int) string {
	return filepath.Join(c.dir(k.root), fmt.Sprintf("%d.log", restart))
}

// write appends messages to the container's log file in CRI format. A
// message longer than 40 bytes is split into partial (P) lines, as the
// runtime splits lines over 16 KiB.
func (k *kubelet) write(c ctr, restart int, msgs ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(c.dir(k.root), 0o755); err != nil {
		k.t.Fatal(err)
	}
	f, err := os.OpenFile(k.file(c, restart), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		k.t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for _, m := range msgs {
		for len(m) > 40 {
			k.ts = k.ts.Add(time.Microsecond)
			fmt.Fprintf(&b, "%s stdout P %s\n", k.ts.Format(time.RFC3339Nano), m[:40])
			m = m[40:]
		}
		k.ts = k.ts.Add(time.Microsecond)
		fmt.Fprintf(&b, "%s stdout F %s\n", k.ts.Format(time.RFC3339Nano), m)
	}
	if _, err := io.WriteString(f, b.String()); err != nil {
		k.t.Fatal(err)
	}
}

// rotate renames the container's log file with a timestamp suffix, creates
// a new empty one, and gzips the older rotated files.
func (k *kubelet) rotate(c ctr, restart int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.file(c, restart)
	k.rot++
	rotated := p + "." + time.Date(2026, 12, 4, 10, k.rot, 0, 0, time.UTC).Format("20060102-150405")
	if err := os.Rename(p, rotated); err != nil {
		k.t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o640); err != nil {
		k.t.Fatal(err)
	}
	old, _ := filepath.Glob(p + ".*")
	sort.Strings(old)
	for _, o := range old {
		if o == rotated || strings.HasSuffix(o, ".gz") {
			continue
		}
		gzipFile(k.t, o)
	}
	return rotated
}

func gzipFile(t testing.TB, path string) {
	in, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write(in)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
