#!/usr/bin/env bash
# Installs Debian's prometheus and prometheus-node-exporter for the scrape and
# remote-write integration tests, without leaving the packaged services
# running (the tests start their own instances on free loopback ports).
# Prints FERRY_PROMETHEUS_BIN and FERRY_NODE_EXPORTER_BIN on stdout; all
# other output goes to stderr.
set -euo pipefail
# shellcheck source=../lib/as_root.sh
. "$(dirname "$0")/../lib/as_root.sh"

PROM_BIN=/usr/bin/prometheus
NODE_BIN=/usr/bin/prometheus-node-exporter

need=()
[ -x "$PROM_BIN" ] || need+=(prometheus)
[ -x "$NODE_BIN" ] || need+=(prometheus-node-exporter)

if [ "${#need[@]}" -gt 0 ]; then
	# Keep the packages' postinst from starting their daemons: invoke-rc.d
	# consults policy-rc.d, and exit code 101 means "action forbidden".
	# Everything here needs root, so it runs through as_root.
	policy=/usr/sbin/policy-rc.d
	had_policy=0
	if [ -e "$policy" ]; then
		had_policy=1
		as_root cp -p "$policy" "$policy.ferry-save"
	fi
	restore_policy() {
		if [ "$had_policy" = 1 ]; then
			as_root mv -f "$policy.ferry-save" "$policy"
		else
			as_root rm -f "$policy"
		fi
	}
	if printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod 755 "$policy"; then
		trap restore_policy EXIT
		apt_install "${need[@]}" || true
		restore_policy
		trap - EXIT
	fi
fi

# Whatever started them (an older install, a service manager), the packaged
# daemons must not hold ports or the data directory during the tests.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl stop prometheus prometheus-node-exporter >&2 2>/dev/null || true
fi
for svc in prometheus prometheus-node-exporter; do
	if [ -x "/etc/init.d/$svc" ]; then
		"/etc/init.d/$svc" stop >&2 2>/dev/null || true
	fi
done

if [ -x "$PROM_BIN" ]; then
	echo "FERRY_PROMETHEUS_BIN=$PROM_BIN"
else
	echo "prometheus.sh: $PROM_BIN not installed" >&2
fi
if [ -x "$NODE_BIN" ]; then
	echo "FERRY_NODE_EXPORTER_BIN=$NODE_BIN"
else
	echo "prometheus.sh: $NODE_BIN not installed" >&2
fi
