#!/usr/bin/env bash
# Builds VictoriaLogs (Apache-2.0), the real receiver of the Loki push API that
# the sink/loki end-to-end tests push to, into "$FERRY_PEERS_DIR/bin" unless it
# is already there. Prints FERRY_VICTORIALOGS_BIN=<path> on stdout; everything
# else goes to stderr.
set -euo pipefail

VERSION=v1.52.1
PKG=github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs

peers="${FERRY_PEERS_DIR:-$HOME/.cache/ferry-peers}"
bindir="$peers/bin"
bin="$bindir/victoria-logs-$VERSION"
mkdir -p "$bindir"

if [ ! -x "$bin" ]; then
	echo "building VictoriaLogs $VERSION into $bindir" >&2
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	# Built outside any module so that Ferry's go.mod is not touched. If the
	# local toolchain is too old for the module, retry with a newer one.
	if ! (cd "$tmp" && GOFLAGS=-buildvcs=false GOBIN="$tmp" go install "$PKG@$VERSION") >&2; then
		echo "retrying with GOTOOLCHAIN=go1.27.3" >&2
		(cd "$tmp" && GOFLAGS=-buildvcs=false GOTOOLCHAIN=go1.27.3 GOBIN="$tmp" go install "$PKG@$VERSION") >&2
	fi
	mv "$tmp/victoria-logs" "$bin"
fi
echo "FERRY_VICTORIALOGS_BIN=$bin"
