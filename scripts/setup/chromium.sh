#!/usr/bin/env bash
# Installs Debian's chromium for the debug page's browser test (headless
# screenshots and DOM dumps of debugui.Handler). Prints FERRY_CHROMIUM_BIN on
# stdout; all other output goes to stderr.
set -euo pipefail
# shellcheck source=../lib/as_root.sh
. "$(dirname "$0")/../lib/as_root.sh"

BIN=/usr/bin/chromium

if [ ! -x "$BIN" ]; then
	# Fonts, so that the screenshot shows text rather than boxes.
	apt_install chromium fonts-dejavu-core || true
fi

if [ -x "$BIN" ]; then
	echo "FERRY_CHROMIUM_BIN=$BIN"
else
	echo "chromium.sh: $BIN not installed" >&2
fi
