package peers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Prometheus is a running Prometheus with the remote-write receiver on.
type Prometheus struct {
	*Process
	// Addr is host:port; remote writes go to WriteURL().
	Addr string
}

// StartPrometheus starts FERRY_PROMETHEUS_BIN (scripts/setup/prometheus.sh,
// Debian's Prometheus 2.42, a remote write 1.0 receiver) with
// --web.enable-remote-write-receiver, a temporary storage directory and
// config, the given config YAML (a minimal one if empty).
func StartPrometheus(t testing.TB, config string) *Prometheus {
	t.Helper()
	return startPrometheus(t, Bin(t, "FERRY_PROMETHEUS_BIN", "scripts/setup/prometheus.sh"), config)
}

// StartPrometheus3 is StartPrometheus with FERRY_PROMETHEUS3_BIN
// (scripts/setup/prometheus3.sh, Prometheus 3 built from source), whose
// receiver accepts both remote write 1.0 and 2.0.
func StartPrometheus3(t testing.TB, config string) *Prometheus {
	t.Helper()
	return startPrometheus(t, Bin(t, "FERRY_PROMETHEUS3_BIN", "scripts/setup/prometheus3.sh"), config,
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request")
}

func startPrometheus(t testing.TB, bin, config string, extra ...string) *Prometheus {
	t.Helper()
	if config == "" {
		config = "global:\n  scrape_interval: 1m\n"
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--web.enable-remote-write-receiver",
	}, extra...)
	p := Start(t, bin, "http://"+addr+"/-/ready", args...)
	return &Prometheus{Process: p, Addr: addr}
}

// WriteURL is the remote-write endpoint.
func (p *Prometheus) WriteURL() string { return "http://" + p.Addr + "/api/v1/write" }

// Result is one series of an instant query.
type Result struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Float returns the result's value.
func (r Result) Float(t testing.TB) float64 {
	t.Helper()
	s, _ := r.Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("value %v: %v", r.Value, err)
	}
	return v
}

// Query runs an instant query at the given time.
func (p *Prometheus) Query(t testing.TB, q string, at time.Time) []Result {
	t.Helper()
	u := fmt.Sprintf("http://%s/api/v1/query?query=%s&time=%s", p.Addr, url.QueryEscape(q),
		strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []Result `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "success" {
		t.Fatalf("query %q: %s", q, body.Error)
	}
	return body.Data.Result
}

// StartNodeExporter starts FERRY_NODE_EXPORTER_BIN and returns its address.
func StartNodeExporter(t testing.TB) string {
	t.Helper()
	bin := Bin(t, "FERRY_NODE_EXPORTER_BIN", "scripts/setup/prometheus.sh")
	addr := FreeAddr(t)
	Start(t, bin, "http://"+addr+"/metrics", "--web.listen-address="+addr)
	return addr
}
