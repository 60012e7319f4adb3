package file

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/prometheus/prometheus/model/labels"
	"go.yaml.in/yaml/v2"
)

// AddressLabel holds a target's address.
const AddressLabel = "__address__"

// FilePathLabel names the file_sd file a target came from, as in
// Prometheus.
const FilePathLabel = "__meta_filepath"

// DefaultSDRefreshInterval is Prometheus's file_sd refresh interval.
const DefaultSDRefreshInterval = 5 * time.Minute

// SD reads Prometheus file_sd files: JSON or YAML lists of target groups,
//
//	[{"targets": ["10.0.0.1:9100"], "labels": {"env": "prod"}}]
//
// Every target becomes a label set with __address__, the group's labels and
// __meta_filepath. Files are re-read when their directory changes and every
// RefreshInterval. A file that cannot be read or parsed keeps its last good
// targets and is logged, and the discoverer shows degraded meanwhile.
type SD struct {
	// Files are globs of target files (see Pattern.Path).
	Files []string
	// RefreshInterval defaults to DefaultSDRefreshInterval.
	RefreshInterval time.Duration
	// DisableWatch turns fsnotify off.
	DisableWatch bool

	last map[string][]labels.Labels // per file, the last good parse
}

var _ discovery.Discoverer = (*SD)(nil)

type group struct {
	Targets []string          `json:"targets" yaml:"targets"`
	Labels  map[string]string `json:"labels" yaml:"labels"`
}

// ParseSD parses the content of one file_sd file read from path: YAML if
// the name ends in .yml or .yaml, JSON otherwise.
func ParseSD(path string, data []byte) ([]labels.Labels, error) {
	var groups []group
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yml", ".yaml":
		if err := yaml.UnmarshalStrict(data, &groups); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	default:
		if err := json.Unmarshal(data, &groups); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	var out []labels.Labels
	for i, g := range groups {
		for _, t := range g.Targets {
			if t == "" {
				return nil, fmt.Errorf("%s: group %d: empty target", path, i)
			}
			b := labels.NewScratchBuilder(len(g.Labels) + 2)
			for k, v := range g.Labels {
				if k == "" {
					return nil, fmt.Errorf("%s: group %d: empty label name", path, i)
				}
				if k != AddressLabel && k != FilePathLabel {
					b.Add(k, v)
				}
			}
			b.Add(AddressLabel, t)
			b.Add(FilePathLabel, path)
			b.Sort()
			out = append(out, b.Labels())
		}
	}
	return out, nil
}

// Run sends the targets of all files at once and whenever they change. It
// returns nil when ctx is done, or a permanent error for malformed globs.
func (s *SD) Run(ctx context.Context, up chan<- []labels.Labels) error {
	for _, f := range s.Files {
		if err := checkPattern(f); err != nil {
			return ferry.Permanent(fmt.Errorf("file_sd: %q: %w", f, err))
		}
	}
	rep := ferry.ReporterFrom(ctx)
	return loop(ctx, up, s.RefreshInterval, DefaultSDRefreshInterval, s.DisableWatch, false, func() ([]labels.Labels, map[string]bool) {
		dirs := map[string]bool{}
		next := map[string][]labels.Labels{}
		var out []labels.Labels
		var failed error
		for _, pat := range s.Files {
			for _, path := range glob(pat, func(d string) { dirs[d] = true }) {
				if _, dup := next[path]; dup {
					continue
				}
				ts, err := readSD(path)
				if err != nil {
					rep.Logger().Warn("file_sd: keeping the last targets", "path", path, "err", err)
					failed = err
					ts = s.last[path]
				}
				next[path] = ts
				out = append(out, ts...)
			}
		}
		s.last = next
		if failed != nil {
			rep.SetHealth(ferry.Degraded, failed)
		} else {
			rep.SetHealth(ferry.Healthy, nil)
		}
		return out, dirs
	})
}

func readSD(path string) ([]labels.Labels, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseSD(path, data)
}
