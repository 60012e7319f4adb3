#!/usr/bin/env bash
# Installs the Kubernetes peers of discovery/kubernetes and examples/kubernetes:
#   - kubectl (Debian's kubernetes-client), for `kubectl apply --dry-run=client`;
#   - etcd (Debian's etcd-server) and a kube-apiserver built with the Go
#     toolchain from k8s.io/kubernetes, for the tests against a real API server.
# kube-apiserver is built in a temporary module that requires k8s.io/kubernetes
# and replaces each of its staging modules (k8s.io/<name> => ./staging/...) by
# the published k8s.io/<name> v0.X.Y, into "$FERRY_PEERS_DIR/bin" unless it is
# already there. Prints FERRY_KUBECTL_BIN, FERRY_ETCD_BIN and
# FERRY_KUBE_APISERVER_BIN lines on stdout; everything else goes to stderr.
set -euo pipefail
. "$(dirname "$0")/../lib/as_root.sh"

KUBE_VERSION=${KUBE_VERSION:-1.37.1}
dir="${FERRY_PEERS_DIR:-$HOME/.cache/ferry-peers}"
bindir="$dir/bin"
mkdir -p "$bindir"

need=()
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	apt_install "${need[@]}"
fi
echo "FERRY_KUBECTL_BIN=$(command -v kubectl)"
echo "FERRY_ETCD_BIN=$(command -v etcd)"

bin="$bindir/kube-apiserver-v$KUBE_VERSION"
if [ ! -x "$bin" ]; then
	echo "building kube-apiserver v$KUBE_VERSION into $bindir (several minutes)" >&2
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	staging_version="v0.${KUBE_VERSION#1.}"
	(
		cd "$tmp"
		export GOFLAGS=-buildvcs=false
		go mod init kubeapiserver >&2 2>/dev/null
		modfile=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
		for m in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile"); do
			go mod edit -replace "$m=$m@$staging_version"
		done
		go mod edit -require "k8s.io/kubernetes@v$KUBE_VERSION"
		cat >main.go <<'GO'
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"

func main() {}
GO
		go mod tidy >&2
		rm main.go
		go build -trimpath -ldflags=-s -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
	)
	mv "$tmp/kube-apiserver" "$bin"
fi
echo "FERRY_KUBE_APISERVER_BIN=$bin"
