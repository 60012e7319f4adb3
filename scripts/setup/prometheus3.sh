#!/usr/bin/env bash
# Builds Prometheus 3 (Apache-2.0) from its Go module into
# "$FERRY_PEERS_DIR/bin" unless it is already there: Debian's Prometheus 2.42
# only receives remote write 1.0, this one also receives 2.0, so the 2.0
# sink is checked against a real receiver. The web UI's assets are not
# built (the tests only use the HTTP API). Prints FERRY_PROMETHEUS3_BIN=<path>
# on stdout; everything else goes to stderr.
set -euo pipefail

VERSION=v0.316.0 # the Go module version of Prometheus 3; the same as go.mod's
PKG=github.com/prometheus/prometheus/cmd/prometheus

peers="${FERRY_PEERS_DIR:-$HOME/.cache/ferry-peers}"
bindir="$peers/bin"
bin="$bindir/prometheus-$VERSION"
mkdir -p "$bindir"

if [ ! -x "$bin" ]; then
	echo "building Prometheus $VERSION into $bindir" >&2
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	# Built outside any module so that Ferry's go.mod is not touched.
	(cd "$tmp" && GOFLAGS=-buildvcs=false GOBIN="$tmp" go install "$PKG@$VERSION") >&2
	mv "$tmp/prometheus" "$bin"
fi
echo "FERRY_PROMETHEUS3_BIN=$bin"
