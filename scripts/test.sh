#!/usr/bin/env bash
# Runs every check and test of Ferry, after installing and building the real
# peers the integration tests run against. Safe to run again: each setup
# step skips what is already there. Run it as yourself, not with sudo: a
# setup script that must install a missing Debian package does that one
# command as root (scripts/lib/as_root.sh: directly as root, else through
# sudo), and a peer that could not be installed makes its tests skip, or
# fail in CI.
#
#   scripts/test.sh              set up, vet, gofmt, go test -race ./...
#   scripts/test.sh -run Docker  extra arguments go to go test
set -euo pipefail
cd "$(dirname "$0")/.."

export FERRY_PEERS_DIR="${FERRY_PEERS_DIR:-$HOME/.cache/ferry-peers}"
mkdir -p "$FERRY_PEERS_DIR"

# Each setup script installs or builds one peer and prints KEY=VALUE lines
# (paths of binaries) that the tests read from the environment.
for s in scripts/setup/*.sh; do
	[ -e "$s" ] || continue
	echo "== setup: $s"
	while IFS= read -r line; do
		case "$line" in
		FERRY_*=*) export "${line?}"; echo "   $line" ;;
		esac
	done < <(bash "$s")
done
# In CI the peers must be there: a test that cannot find one fails instead of
# skipping.
if [ -n "${CI:-}" ]; then export FERRY_REQUIRE_PEERS=1; fi

echo "== go vet"
go vet ./...
echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$bad" ]; then echo "not gofmt-formatted:"; echo "$bad"; exit 1; fi
# The fault suite drives real containers and peers at full speed and
# measures timing-sensitive recovery; it runs after the other packages, on
# its own, so that their load does not skew it.
echo "== go test -race (all but the fault suite)"
go test -race -count=1 -timeout 40m "$@" $(go list ./... | grep -v '/faults')
echo "== go test -race ./faults"
go test -race -count=1 -timeout 40m "$@" ./faults/...
