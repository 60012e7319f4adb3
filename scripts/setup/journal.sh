#!/usr/bin/env bash
# Installs Debian's systemd-journal-remote, which turns journal export format
# into journal files for the source/journal integration tests, and checks for
# journalctl (package systemd), which the source runs to read them. Prints
# FERRY_JOURNAL_REMOTE_BIN=<path> and FERRY_JOURNALCTL_BIN=<path> on stdout;
# everything else goes to stderr.
set -euo pipefail
. "$(dirname "$0")/../lib/as_root.sh"

REMOTE=/lib/systemd/systemd-journal-remote
[ -x "$REMOTE" ] || REMOTE=/usr/lib/systemd/systemd-journal-remote

missing=()
[ -x "$REMOTE" ] || missing+=(systemd-journal-remote)
command -v journalctl >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}" >&2
	apt_install "${missing[@]}"
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
