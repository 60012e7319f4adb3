#!/usr/bin/env bash
# Installs Debian's systemd-journal-remote, which turns journal export format
# into journal files for the source/journal integration tests, and checks for
# journalctl (package systemd), which the source runs to read them. Prints
# FERRY_JOURNAL_REMOTE_BIN=<path> and FERRY_JOURNALCTL_BIN=<path> on stdout;
# everything else goes to stderr.
set -euo pipefail

REMOTE=/lib/systemd/systemd-journal-remote
[ -x "$REMOTE" ] || REMOTE=/usr/lib/systemd/systemd-journal-remote

missing=()
[ -x "$REMOTE" ] || missing+=(systemd-journal-remote)
command -v journalctl >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "journal.sh: need root to install ${missing[*]}" >&2
		exit 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${missing[@]}" >&2
	fi
fi
[ -x "$REMOTE" ] || REMOTE=/lib/systemd/systemd-journal-remote
[ -x "$REMOTE" ] || REMOTE=/usr/lib/systemd/systemd-journal-remote

if [ -x "$REMOTE" ]; then
	echo "FERRY_JOURNAL_REMOTE_BIN=$REMOTE"
else
	echo "journal.sh: systemd-journal-remote not installed" >&2
fi
if JCTL=$(command -v journalctl); then
	echo "FERRY_JOURNALCTL_BIN=$JCTL"
else
	echo "journal.sh: journalctl not installed" >&2
fi
