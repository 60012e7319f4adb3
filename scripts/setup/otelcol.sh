#!/usr/bin/env bash
# Builds an OpenTelemetry Collector (Apache-2.0) with the Collector's own
# builder (ocb) into "$FERRY_PEERS_DIR/bin" unless it is already there: the
# OTLP receiver, the OTLP/HTTP exporter and the debug exporter, which is all
# the source/otlp and sink/otlp integration tests need (the collector takes
# OTLP from a test client or from Ferry's sink, and exports over OTLP/HTTP to
# Ferry's receiver or to a test server that checks what arrived). Prints
# FERRY_OTELCOL_BIN=<path> on stdout; everything else goes to stderr.
set -euo pipefail
. "$(dirname "$0")/../lib/gopeer.sh"

version=v0.165.0
peers="${FERRY_PEERS_DIR:-$HOME/.cache/ferry-peers}"
bin="$peers/bin/otelcol-ferry-$version"
if [ ! -x "$bin" ]; then
	builder=$(gopeer_build ocb go.opentelemetry.io/collector/cmd/builder "$version" builder)
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	cat >"$tmp/manifest.yaml" <<MANIFEST
dist:
  name: otelcol-ferry
  description: OpenTelemetry Collector for Ferry's integration tests
  output_path: $tmp/dist
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver $version
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/debugexporter $version
  - gomod: go.opentelemetry.io/collector/exporter/otlphttpexporter $version
MANIFEST
	echo "building otelcol-ferry $version (takes minutes)" >&2
	(cd "$tmp" && GOFLAGS=-buildvcs=false "$builder" --config "$tmp/manifest.yaml") >&2
	mkdir -p "$peers/bin"
	mv "$tmp/dist/otelcol-ferry" "$bin"
fi
echo "FERRY_OTELCOL_BIN=$bin"
