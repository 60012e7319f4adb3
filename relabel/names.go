package relabel

import (
	"errors"
	"fmt"
	"strings"

	prom "github.com/prometheus/prometheus/model/relabel"
)

// Well-known label names, in one place for every package. Names that start
// with "__" are internal: sinks remove them before delivery, and Prometheus
// scrapes drop the ones left after target relabeling.
const (
	// AddressLabel is the host:port of a scrape target.
	AddressLabel = "__address__"
	// SchemeLabel is the scheme of a scrape target (http or https).
	SchemeLabel = "__scheme__"
	// MetricsPathLabel is the HTTP path of a scrape target.
	MetricsPathLabel = "__metrics_path__"
	// ParamLabelPrefix starts the labels that are URL parameters of a
	// scrape target: __param_<name>.
	ParamLabelPrefix = "__param_"
	// ScrapeIntervalLabel and ScrapeTimeoutLabel override a target's scrape
	// interval and timeout.
	ScrapeIntervalLabel = "__scrape_interval__"
	ScrapeTimeoutLabel  = "__scrape_timeout__"
	// MetricNameLabel holds a sample's metric name.
	MetricNameLabel = "__name__"
	// JobLabel and InstanceLabel identify a scraped series' target.
	JobLabel      = "job"
	InstanceLabel = "instance"
	// MetaLabelPrefix starts the labels discovery attaches to targets.
	MetaLabelPrefix = "__meta_"
	// TmpLabelPrefix starts labels reserved for temporary values in
	// relabeling rules.
	TmpLabelPrefix = "__tmp_"

	// PathLabel is the path of a file target (discovery/file, read by
	// source/filetail).
	PathLabel = "__path__"
	// PathExcludeLabel is an exclude pattern next to a PathLabel pattern.
	PathExcludeLabel = "__path_exclude__"
	// FilePathLabel is the file_sd file a target was read from.
	FilePathLabel = "__meta_filepath"
	// TenantLabel routes a log entry to a Loki tenant.
	TenantLabel = "__tenant_id__"

	// DockerLabelPrefix starts the labels of Docker discovery.
	DockerLabelPrefix = "__meta_docker_"
	// DockerLogStreamLabel is "stdout" or "stderr". It exists only on log
	// entries (source/dockerlogs sets it per line), never on targets.
	DockerLogStreamLabel = "__meta_docker_container_log_stream"
)

// Labels of Kubernetes pod targets (discovery/kubernetes, read by
// source/podlogs), as Prometheus's kubernetes_sd_config names them; every
// other Kubernetes label is documented there.
const (
	KubernetesLabelPrefix           = "__meta_kubernetes_"
	KubernetesNamespaceLabel        = "__meta_kubernetes_namespace"
	KubernetesPodNameLabel          = "__meta_kubernetes_pod_name"
	KubernetesPodUIDLabel           = "__meta_kubernetes_pod_uid"
	KubernetesPodNodeNameLabel      = "__meta_kubernetes_pod_node_name"
	KubernetesPodContainerNameLabel = "__meta_kubernetes_pod_container_name"
	KubernetesPodContainerInitLabel = "__meta_kubernetes_pod_container_init"
)

// The labels Docker discovery (discovery/docker) gives its targets, as
// Prometheus's docker_sd_config names them.
const (
	DockerContainerIDLabel          = "__meta_docker_container_id"
	DockerContainerNameLabel        = "__meta_docker_container_name"
	DockerContainerNetworkModeLabel = "__meta_docker_container_network_mode"
	DockerContainerImageLabel       = "__meta_docker_container_image"
	DockerContainerImageIDLabel     = "__meta_docker_container_image_id"
	// DockerContainerLabelPrefix starts the container's own labels, their
	// names sanitised.
	DockerContainerLabelPrefix = "__meta_docker_container_label_"
	DockerNetworkIDLabel       = "__meta_docker_network_id"
	DockerNetworkNameLabel     = "__meta_docker_network_name"
	DockerNetworkScopeLabel    = "__meta_docker_network_scope"
	DockerNetworkInternalLabel = "__meta_docker_network_internal"
	DockerNetworkIngressLabel  = "__meta_docker_network_ingress"
	// DockerNetworkLabelPrefix starts the network's own labels, their
	// names sanitised.
	DockerNetworkLabelPrefix = "__meta_docker_network_label_"
	DockerNetworkIPLabel     = "__meta_docker_network_ip"
	DockerPortPrivateLabel   = "__meta_docker_port_private"
	DockerPortPublicLabel    = "__meta_docker_port_public"
	DockerPortPublicIPLabel  = "__meta_docker_port_public_ip"
)

// DockerTargetLabels returns the label names Docker discovery gives its
// targets, in the form of Producer.TargetLabels: __address__ and the
// Docker*Label names above, with the container's and the network's own
// labels as prefixes. DockerLogStreamLabel is not among them.
func DockerTargetLabels() []string {
	return []string{
		AddressLabel,
		DockerContainerIDLabel,
		DockerContainerNameLabel,
		DockerContainerNetworkModeLabel,
		DockerContainerImageLabel,
		DockerContainerImageIDLabel,
		DockerContainerLabelPrefix + "*",
		DockerNetworkIDLabel,
		DockerNetworkNameLabel,
		DockerNetworkScopeLabel,
		DockerNetworkInternalLabel,
		DockerNetworkIngressLabel,
		DockerNetworkLabelPrefix + "*",
		DockerNetworkIPLabel,
		DockerPortPrivateLabel,
		DockerPortPublicLabel,
		DockerPortPublicIPLabel,
	}
}

// entryOnly names the well-known labels that exist on log entries but never
// on targets, with where to relabel them instead.
var entryOnly = map[string]string{
	DockerLogStreamLabel: "it is set per log line by source/dockerlogs, never on targets: relabel it in dockerlogs.Source.Rules or with pipeline.Relabel on the entries",
}

// Producer is implemented by components that produce targets (discoverers)
// and know every label name their targets can carry. TargetLabels returns
// those names; a name ending in "*" stands for every name with that prefix.
// A producer whose targets can carry names it cannot list (labels from a
// user's file, say) does not implement Producer. pipeline.Builder.Build uses
// it to report relabel rules that read a label that cannot exist.
type Producer interface {
	TargetLabels() []string
}

// Names is a set of label names in the form of Producer.TargetLabels:
// exact names, and prefixes written as a name ending in "*".
type Names []string

// Contains reports whether name is in the set.
func (n Names) Contains(name string) bool {
	for _, s := range n {
		if p, ok := strings.CutSuffix(s, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if s == name {
			return true
		}
	}
	return false
}

// CheckReads reports the rules that read a label which cannot exist when
// they run, given the names the input can carry. A rule reads its source
// labels, and keepequal and dropequal also read their target label. Names
// written by earlier rules count as existing. When a rule writes a label
// whose name is not known before it runs (a target label with a $
// reference, a labelmap), CheckReads stops there and says nothing about
// the rules after it. The error lists every such read with the rule's
// position.
func (r *Rules) CheckReads(input Names) error {
	if r.Len() == 0 {
		return nil
	}
	written := map[string]bool{}
	has := func(name string) bool { return written[name] || input.Contains(name) }
	var errs []error
	for i, c := range r.cfgs {
		reads := make([]string, 0, len(c.SourceLabels)+1)
		for _, s := range c.SourceLabels {
			reads = append(reads, string(s))
		}
		if c.Action == prom.KeepEqual || c.Action == prom.DropEqual {
			reads = append(reads, c.TargetLabel)
		}
		for _, name := range reads {
			if has(name) {
				continue
			}
			msg := fmt.Sprintf("relabel rule %d (%s) reads %s, which no input target can carry", i, c.Action, name)
			if why, ok := entryOnly[name]; ok {
				msg += ": " + why
			}
			errs = append(errs, errors.New(msg))
		}
		switch c.Action {
		case prom.Replace, prom.HashMod, prom.Lowercase, prom.Uppercase:
			if strings.Contains(c.TargetLabel, "$") {
				return errors.Join(errs...)
			}
			written[c.TargetLabel] = true
		case prom.LabelMap:
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}

// Writes returns the names of the labels the rules may add, and false if a
// rule adds labels whose names are not known before it runs (a target label
// with a $ reference, a labelmap).
func (r *Rules) Writes() (Names, bool) {
	var out Names
	for _, c := range r.Configs() {
		switch c.Action {
		case prom.Replace, prom.HashMod, prom.Lowercase, prom.Uppercase:
			if strings.Contains(c.TargetLabel, "$") {
				return nil, false
			}
			out = append(out, c.TargetLabel)
		case prom.LabelMap:
			return nil, false
		}
	}
	return out, true
}
