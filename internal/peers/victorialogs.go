package peers

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// VictoriaLogs is a running VictoriaLogs, the receiver of the Loki push API
// the tests deliver to.
type VictoriaLogs struct {
	*Process
	// URL is the base URL; Loki pushes go to URL+"/insert/loki/api/v1/push".
	URL string
}

// StartVictoriaLogs starts FERRY_VICTORIALOGS_BIN (scripts/setup/victorialogs.sh)
// with a temporary storage directory.
func StartVictoriaLogs(t testing.TB) *VictoriaLogs {
	t.Helper()
	bin := Bin(t, "FERRY_VICTORIALOGS_BIN", "scripts/setup/victorialogs.sh")
	addr := FreeAddr(t)
	p := Start(t, bin, "http://"+addr+"/health",
		"-httpListenAddr="+addr,
		"-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y",
		"-loggerLevel=WARN",
	)
	return &VictoriaLogs{Process: p, URL: "http://" + addr}
}

// PushURL is where Loki pushes go.
func (v *VictoriaLogs) PushURL() string { return v.URL + "/insert/loki/api/v1/push" }

// Query flushes what was ingested and runs a LogsQL query, returning its
// rows (field name to value).
func (v *VictoriaLogs) Query(t testing.TB, q string) []map[string]string {
	t.Helper()
	if resp, err := http.Get(v.URL + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.PostForm(v.URL+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query %q: status %d", q, resp.StatusCode)
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("query row %q: %v", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}
