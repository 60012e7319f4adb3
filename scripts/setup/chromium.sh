#!/usr/bin/env bash
# Installs Debian's chromium for the debug page's browser test (headless
# screenshots and DOM dumps of debugui.Handler). Prints FERRY_CHROMIUM_BIN on
# stdout; all other output goes to stderr.
set -euo pipefail

BIN=/usr/bin/chromium

if [ ! -x "$BIN" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "chromium.sh: need root to install chromium" >&2
		exit 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Fonts, so that the screenshot shows text rather than boxes.
	pkgs=(chromium fonts-dejavu-core)
	if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
	fi
fi

if [ -x "$BIN" ]; then
	echo "FERRY_CHROMIUM_BIN=$BIN"
else
	echo "chromium.sh: $BIN not installed" >&2
fi
