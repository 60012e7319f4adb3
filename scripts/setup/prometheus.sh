#!/usr/bin/env bash
# Installs Debian's prometheus and prometheus-node-exporter for the scrape and
# remote-write integration tests, without leaving the packaged services
# running (the tests start their own instances on free loopback ports).
# Prints FERRY_PROMETHEUS_BIN and FERRY_NODE_EXPORTER_BIN on stdout; all
# other output goes to stderr.
set -euo pipefail

PROM_BIN=/usr/bin/prometheus
NODE_BIN=/usr/bin/prometheus-node-exporter

need=()
[ -x "$PROM_BIN" ] || need+=(prometheus)
[ -x "$NODE_BIN" ] || need+=(prometheus-node-exporter)

if [ "${#need[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "prometheus.sh: need root to install ${need[*]}" >&2
		exit 0
	fi
	# Keep the packages' postinst from starting their daemons: invoke-rc.d
	# consults policy-rc.d, and exit code 101 means "action forbidden".
	policy=/usr/sbin/policy-rc.d
	had_policy=0
	if [ -e "$policy" ]; then
		had_policy=1
		cp -p "$policy" "$policy.ferry-save"
	fi
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	restore_policy() {
		if [ "$had_policy" = 1 ]; then
			mv -f "$policy.ferry-save" "$policy"
		else
			rm -f "$policy"
		fi
	}
	trap restore_policy EXIT
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${need[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${need[@]}" >&2
	fi
	restore_policy
	trap - EXIT
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
