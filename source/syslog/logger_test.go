package syslog

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestLogger sends with util-linux's logger (Debian's bsdutils) over TCP
// with octet counting (RFC 5424 with structured data), TCP with newline
// framing (RFC 3164) and UDP, and checks the labels against what it sent.
func TestLogger(t *testing.T) {
	bin, err := exec.LookPath("logger")
	if err != nil {
		if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
			t.Fatal("logger (bsdutils) not installed")
		}
		t.Skip("logger (bsdutils) not installed")
	}
	for _, c := range []struct {
		name  string
		proto Protocol
		args  []string
		want  labels.Labels
	}{
		{"tcp-octet-rfc5424", TCP, []string{"--tcp", "--octet-count", "--rfc5424", "--msgid", "M1", "--sd-id", "ferry@32473", "--sd-param", `k="v w"`},
			labels.FromStrings(LabelMsgID, "M1", "__syslog_message_sd_ferry_32473_k", "v w")},
		{"tcp-newline-rfc3164", TCP, []string{"--tcp", "--rfc3164"}, labels.EmptyLabels()},
		{"udp-rfc5424", UDP, []string{"--udp", "--rfc5424"}, labels.EmptyLabels()},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := startSource(t, &Source{Protocol: c.proto, LabelStructuredData: true, UseIncomingTimestamp: true, DisableHostnameLookup: true}, 16)
			_, port, _ := strings.Cut(r.s.LocalAddr().String(), ":")
			args := append([]string{"--server", "127.0.0.1", "--port", port, "--tag", "ferrytest", "--id=4242",
				"--priority", "local2.err"}, c.args...)
			args = append(args, "hello from logger")
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("logger %v: %v\n%s", args, err, out)
			}
			e := r.collect(t, 1, 10*time.Second)[0]
			if e.Line != "hello from logger" {
				t.Errorf("line = %q", e.Line)
			}
			host, _ := os.Hostname()
			want := map[string]string{LabelAppName: "ferrytest", LabelProcID: "4242", LabelFacility: "local2",
				LabelSeverity: "error", LabelConnectionIP: "127.0.0.1"}
			c.want.Range(func(l labels.Label) { want[l.Name] = l.Value })
			for name, v := range want {
				if got := e.Labels.Get(name); got != v {
					t.Errorf("%s = %q, want %q (%v)", name, got, v, e.Labels)
				}
			}
			if h := e.Labels.Get(LabelHostname); h == "" || !strings.HasPrefix(host, strings.Split(h, ".")[0]) {
				t.Errorf("hostname label %q, host %q", h, host)
			}
			if time.Since(e.Timestamp) > time.Minute || time.Until(e.Timestamp) > time.Minute {
				t.Errorf("timestamp %v", e.Timestamp)
			}
		})
	}
}
