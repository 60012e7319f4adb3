#!/usr/bin/env bash
# Builds VictoriaLogs (Apache-2.0), the real receiver of the Loki push API that
# the sink/loki end-to-end tests push to, into "$FERRY_PEERS_DIR/bin" unless it
# is already there. Prints FERRY_VICTORIALOGS_BIN=<path> on stdout; everything
# else goes to stderr.
set -euo pipefail
. "$(dirname "$0")/../lib/gopeer.sh"

bin=$(gopeer_build victoria-logs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs v1.52.1 victoria-logs)
echo "FERRY_VICTORIALOGS_BIN=$bin"
