#!/usr/bin/env bash
# Measures what each discovery mechanism adds to a static binary: builds
# tiny programs that import (a) Ferry's discovery.Static only, (b)
# discovery/promsd with Prometheus's static config (the base package),
# (c) promsd with one mechanism each (http_sd, dns, file, consul, ec2),
# (d) discovery/kubernetes, and the agent of this directory, with
# CGO_ENABLED=0 -trimpath -ldflags='-s -w', and prints their sizes in bytes.
# The programs build against a copy of go.mod (-modfile), to which go adds
# the requirements of mechanisms Ferry does not use itself (consul's, say;
# that may fetch their go.mod files); the repository's go.mod is unchanged.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d ./_sizes.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp go.mod "$tmp/copy.mod"
cp go.sum "$tmp/copy.sum"
prog() { mkdir -p "$tmp/$1"; cat >"$tmp/$1/main.go"; }
# mech name package config: promsd running one Prometheus mechanism.
mech() {
	prog "promsd-$1" <<GO
package main

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/promsd"
	"github.com/prometheus/prometheus/discovery/$2"
	"github.com/prometheus/prometheus/model/labels"
)

func main() {
	cfg := $3
	d := &promsd.Discoverer{Config: &cfg}
	if err := d.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	up := make(chan []labels.Labels, 1)
	go d.Run(context.Background(), up)
	fmt.Println(<-up)
}
GO
}
mech dns dns 'dns.DefaultSDConfig; cfg.Names = []string{"example.org"}'
mech file file 'file.DefaultSDConfig; cfg.Files = []string{"/etc/targets.json"}'
mech consul consul 'consul.DefaultSDConfig'
mech ec2 aws 'aws.DefaultEC2SDConfig'

prog static <<'GO'
package main

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry/discovery"
	"github.com/prometheus/prometheus/model/labels"
)

func main() {
	up := make(chan []labels.Labels, 1)
	go discovery.Addresses([]string{"a:1"}).Run(context.Background(), up)
	fmt.Println(<-up)
}
GO
prog promsd-base <<'GO'
package main

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/promsd"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/labels"
)

func main() {
	d := &promsd.Discoverer{Config: discovery.StaticConfig{{Targets: []model.LabelSet{{"__address__": "a:1"}}}}}
	if err := d.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	up := make(chan []labels.Labels, 1)
	go d.Run(context.Background(), up)
	fmt.Println(<-up)
}
GO
prog promsd-http <<'GO'
package main

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/promsd"
	"github.com/prometheus/prometheus/discovery/http"
	"github.com/prometheus/prometheus/model/labels"
)

func main() {
	cfg := http.DefaultSDConfig
	cfg.URL = "http://127.0.0.1:1/sd"
	d := &promsd.Discoverer{Config: &cfg}
	if err := d.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	up := make(chan []labels.Labels, 1)
	go d.Run(context.Background(), up)
	fmt.Println(<-up)
}
GO
prog kubernetes <<'GO'
package main

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes"
	"github.com/prometheus/prometheus/model/labels"
)

func main() {
	d := &kubernetes.Discoverer{NodeName: "n"}
	if err := d.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	up := make(chan []labels.Labels, 1)
	go d.Run(context.Background(), up)
	fmt.Println(<-up)
}
GO
for p in static promsd-base promsd-http promsd-dns promsd-file promsd-consul promsd-ec2 kubernetes; do
	CGO_ENABLED=0 go build -modfile="$tmp/copy.mod" -mod=mod -trimpath -ldflags='-s -w' -o "$tmp/$p.bin" "./$tmp/$p"
	printf '%-14s %10d\n' "$p" "$(stat -c %s "$tmp/$p.bin")"
done
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/agent.bin" ./examples/kubernetes
printf '%-14s %10d\n' agent "$(stat -c %s "$tmp/agent.bin")"
