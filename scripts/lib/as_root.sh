# Sourced by the scripts/setup/*.sh that install Debian packages, and by
# .ci/run. Scripts run as whoever starts them and escalate only for the
# commands that need root, only when they run:
#
#   as_root CMD [ARG...]      runs CMD directly as uid 0, through sudo
#                             otherwise (which may ask for a password), and
#                             fails with a message saying what to do when
#                             neither is possible.
#   apt_install PKG...        installs the Debian packages with
#                             apt-get install -y --no-install-recommends,
#                             non-interactively, through as_root; runs
#                             apt-get update and tries once more if the
#                             first install fails (stale package lists).
#
# sudo resets the environment, so pass variables as `as_root env VAR=x cmd`.
# All output goes to stderr: setup scripts keep stdout for FERRY_X_BIN lines.

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -- "$@"
	else
		echo "${0##*/}: need root for: $*" >&2
		echo "${0##*/}: run this script as root, or install sudo, or run that command as root first" >&2
		return 1
	fi
}

apt_install() {
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
	if ! as_root "${apt[@]}" install -y --no-install-recommends "$@" >&2; then
		as_root "${apt[@]}" update >&2 || return 1
		as_root "${apt[@]}" install -y --no-install-recommends "$@" >&2
	fi
}
