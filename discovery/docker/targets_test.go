package docker

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/ferrydev/ferry/relabel"
	"github.com/prometheus/prometheus/model/labels"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// toLabels converts a Prometheus model.LabelSet as JSON (a map) to labels,
// dropping empty values as Prometheus does when it turns target groups into
// targets.
func toLabels(m map[string]string) labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range m {
		b.Set(k, v)
	}
	return b.Labels()
}

// TestPrometheusParity runs the target generation on the Docker API
// responses of Prometheus's own docker_sd tests and compares the result with
// the target sets those tests expect.
func TestPrometheusParity(t *testing.T) {
	var expected map[string][]map[string]string
	readJSON(t, "testdata/prometheus_expected.json", &expected)
	for _, tc := range []struct {
		promTest string
		dir      string
		cfg      config
	}{
		{"TestDockerSDRefresh", "dockerprom", config{port: 80, hostNetworkingHost: "localhost", matchFirstNetwork: true}},
		{"TestDockerSDRefreshMatchAllNetworks", "dockerprom", config{port: 80, hostNetworkingHost: "localhost"}},
		{"TestDockerSDRefreshIPv6Only", "dockeripv6", config{port: 80, hostNetworkingHost: "localhost", matchFirstNetwork: true}},
	} {
		t.Run(tc.promTest, func(t *testing.T) {
			var cs []container.Summary
			var ns []network.Summary
			readJSON(t, filepath.Join("testdata", tc.dir, "containers.json"), &cs)
			readJSON(t, filepath.Join("testdata", tc.dir, "networks.json"), &ns)
			got := tc.cfg.targets(cs, ns)
			// TargetLabels, which Build checks relabel rules against,
			// names every label Prometheus gives these targets.
			names := relabel.Names((&Discoverer{}).TargetLabels())
			for _, tg := range got {
				tg.Range(func(l labels.Label) {
					if !names.Contains(l.Name) {
						t.Errorf("label %s is not in TargetLabels", l.Name)
					}
				})
			}
			want := make([]labels.Labels, 0, len(expected[tc.promTest]))
			for _, m := range expected[tc.promTest] {
				want = append(want, toLabels(m))
			}
			if len(want) == 0 {
				t.Fatal("no expectations")
			}
			slices.SortFunc(want, labels.Compare)
			if !slices.EqualFunc(got, want, labels.Equal) {
				for i := range max(len(got), len(want)) {
					var g, w labels.Labels
					if i < len(got) {
						g = got[i]
					}
					if i < len(want) {
						w = want[i]
					}
					if !labels.Equal(g, w) {
						t.Errorf("target %d:\n got  %v\n want %v", i, g, w)
					}
				}
			}
		})
	}
}

func TestTargets(t *testing.T) {
	nets := []network.Summary{
		{ID: "n1", Name: "bridge", Scope: "local", Labels: map[string]string{"com.example/x": "y"}},
		{ID: "n2", Name: "alpha", Scope: "local", Internal: true},
		{ID: "n3", Name: "host", Scope: "local"},
	}
	ep := func(id, ip string) *network.EndpointSettings {
		return &network.EndpointSettings{NetworkID: id, IPAddress: ip}
	}
	summary := func(id, name, mode string, nets map[string]*network.EndpointSettings, ports ...container.Port) container.Summary {
		s := container.Summary{ID: id, Names: []string{name}, Ports: ports, Labels: map[string]string{"com.docker.compose.service": "web", "a-b.c": "d"},
			NetworkSettings: &container.NetworkSettingsSummary{Networks: nets}}
		s.HostConfig.NetworkMode = mode
		return s
	}
	netLabels := func(id, name string, internal bool) map[string]string {
		m := map[string]string{LabelNetworkID: id, LabelNetworkName: name, LabelNetworkScope: "local",
			LabelNetworkInternal: "false", LabelNetworkIngress: "false"}
		if internal {
			m[LabelNetworkInternal] = "true"
		}
		if id == "n1" {
			m[LabelNetworkLabelPrefix+"com_example_x"] = "y"
		}
		return m
	}
	target := func(id, name, mode string, net map[string]string, extra map[string]string) map[string]string {
		m := map[string]string{LabelContainerID: id, LabelContainerName: name, LabelContainerNetworkMode: mode,
			LabelContainerLabelPrefix + "com_docker_compose_service": "web", LabelContainerLabelPrefix + "a_b_c": "d"}
		for k, v := range net {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name       string
		cfg        config
		containers []container.Summary
		want       []map[string]string
	}{
		{
			name: "fallback port",
			cfg:  config{port: 8080, matchFirstNetwork: true},
			containers: []container.Summary{summary("c1", "/one", "bridge", map[string]*network.EndpointSettings{"bridge": ep("n1", "10.0.0.2")},
				container.Port{PrivatePort: 53, Type: "udp"})},
			want: []map[string]string{target("c1", "/one", "bridge", netLabels("n1", "bridge", false),
				map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:8080"})},
		},
		{
			name: "published port per binding",
			cfg:  config{port: 80, matchFirstNetwork: true},
			containers: []container.Summary{summary("c1", "/one", "bridge", map[string]*network.EndpointSettings{"bridge": ep("n1", "10.0.0.2")},
				container.Port{PrivatePort: 80, PublicPort: 8080, IP: "0.0.0.0", Type: "tcp"},
				container.Port{PrivatePort: 80, PublicPort: 8080, IP: "::", Type: "tcp"},
				container.Port{PrivatePort: 9000, Type: "tcp"})},
			want: []map[string]string{
				target("c1", "/one", "bridge", netLabels("n1", "bridge", false), map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:80",
					LabelPortPrivate: "80", LabelPortPublic: "8080", LabelPortPublicIP: "0.0.0.0"}),
				target("c1", "/one", "bridge", netLabels("n1", "bridge", false), map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:80",
					LabelPortPrivate: "80", LabelPortPublic: "8080", LabelPortPublicIP: "::"}),
				target("c1", "/one", "bridge", netLabels("n1", "bridge", false), map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:9000",
					LabelPortPrivate: "9000"}),
			},
		},
		{
			name: "host networking",
			cfg:  config{port: 80, hostNetworkingHost: "myhost", matchFirstNetwork: true},
			containers: []container.Summary{summary("c1", "/h", "host", map[string]*network.EndpointSettings{"host": ep("n3", "")},
				container.Port{PrivatePort: 53, Type: "udp"})},
			want: []map[string]string{target("c1", "/h", "host", netLabels("n3", "host", false), map[string]string{"__address__": "myhost"})},
		},
		{
			name: "first network by name",
			cfg:  config{port: 80, matchFirstNetwork: true},
			containers: []container.Summary{summary("c1", "/m", "bridge", map[string]*network.EndpointSettings{
				"bridge": ep("n1", "10.0.0.2"), "alpha": ep("n2", "10.1.0.2"), "zeta": nil})},
			want: []map[string]string{target("c1", "/m", "bridge", netLabels("n2", "alpha", true),
				map[string]string{LabelNetworkIP: "10.1.0.2", "__address__": "10.1.0.2:80"})},
		},
		{
			name: "all networks",
			cfg:  config{port: 80},
			containers: []container.Summary{summary("c1", "/m", "bridge", map[string]*network.EndpointSettings{
				"bridge": ep("n1", "10.0.0.2"), "alpha": ep("n2", "10.1.0.2"), "zeta": nil})},
			want: []map[string]string{
				target("c1", "/m", "bridge", netLabels("n2", "alpha", true), map[string]string{LabelNetworkIP: "10.1.0.2", "__address__": "10.1.0.2:80"}),
				target("c1", "/m", "bridge", netLabels("n1", "bridge", false), map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:80"}),
			},
		},
		{
			name: "shared network namespace chain",
			cfg:  config{port: 80, matchFirstNetwork: true},
			containers: []container.Summary{
				summary("c1", "/base", "bridge", map[string]*network.EndpointSettings{"bridge": ep("n1", "10.0.0.2")}),
				summary("c2", "/mid", "container:c1", nil),
				summary("c3", "/side", "container:c2", nil, container.Port{PrivatePort: 9100, Type: "tcp"}),
				summary("c4", "/orphan", "container:gone", nil),
				{ID: "c5"}, // no name: skipped
			},
			want: []map[string]string{
				target("c1", "/base", "bridge", netLabels("n1", "bridge", false), map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:80"}),
				target("c2", "/mid", "container:c1", netLabels("n1", "bridge", false), map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:80"}),
				target("c3", "/side", "container:c2", netLabels("n1", "bridge", false), map[string]string{LabelNetworkIP: "10.0.0.2", "__address__": "10.0.0.2:9100", LabelPortPrivate: "9100"}),
			},
		},
		{
			name: "ipv6 only",
			cfg:  config{port: 80, matchFirstNetwork: true},
			containers: []container.Summary{summary("c1", "/v6", "bridge", map[string]*network.EndpointSettings{
				"bridge": {NetworkID: "n1", GlobalIPv6Address: "fd00::5"}}, container.Port{PrivatePort: 80, Type: "tcp"})},
			want: []map[string]string{target("c1", "/v6", "bridge", netLabels("n1", "bridge", false),
				map[string]string{LabelNetworkIP: "fd00::5", "__address__": "[fd00::5]:80", LabelPortPrivate: "80"})},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.targets(tc.containers, nets)
			want := make([]labels.Labels, len(tc.want))
			for i, m := range tc.want {
				want[i] = toLabels(m)
			}
			slices.SortFunc(want, labels.Compare)
			if !slices.EqualFunc(got, want, labels.Equal) {
				t.Errorf("got\n%v\nwant\n%v", got, want)
			}
		})
	}
}
