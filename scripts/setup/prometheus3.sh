#!/usr/bin/env bash
# Builds Prometheus 3 (Apache-2.0) from its Go module into
# "$FERRY_PEERS_DIR/bin" unless it is already there: Debian's Prometheus 2.42
# only receives remote write 1.0, this one also receives 2.0, so the 2.0
# sink is checked against a real receiver. The web UI's assets are not
# built (the tests only use the HTTP API). Prints FERRY_PROMETHEUS3_BIN=<path>
# on stdout; everything else goes to stderr.
set -euo pipefail
. "$(dirname "$0")/../lib/gopeer.sh"

# v0.316.0 is the Go module version of Prometheus 3, the same as in go.mod.
bin=$(gopeer_build prometheus github.com/prometheus/prometheus/cmd/prometheus v0.316.0 prometheus)
echo "FERRY_PROMETHEUS3_BIN=$bin"
