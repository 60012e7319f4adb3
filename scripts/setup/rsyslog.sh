#!/usr/bin/env bash
# Installs Debian's rsyslog with its TLS netstream drivers (rsyslog-gnutls for
# "gtls", rsyslog-openssl for "ossl"), the real syslog sender of the
# source/syslog integration tests. The tests run rsyslogd in the foreground
# with a configuration of their own; this script does not start or enable
# the system service. Prints FERRY_RSYSLOGD_BIN=<path> on stdout; everything
# else goes to stderr.
set -euo pipefail
. "$(dirname "$0")/../lib/as_root.sh"

BIN=/usr/sbin/rsyslogd
pkgs=(rsyslog rsyslog-gnutls rsyslog-openssl)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}" >&2
	apt_install "${missing[@]}"
fi

if [ -x "$BIN" ]; then
	echo "FERRY_RSYSLOGD_BIN=$BIN"
else
	echo "rsyslog.sh: $BIN not installed" >&2
fi
