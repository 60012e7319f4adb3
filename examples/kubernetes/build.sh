#!/usr/bin/env bash
# Builds the agent as a static binary and an image from it without a
# Dockerfile: a one-layer root file system (the binary and the CA bundle)
# packed as a tar and imported with `docker import`.
#
#   examples/kubernetes/build.sh [image]     # default image ferry-agent:dev
#
# The root file system and its tar go to $OUT (default
# examples/kubernetes/out).
# Without docker, the tar is left in out/ for `podman import`, `ctr images
# import` of a wrapped layer, or any registry tool.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:-ferry-agent:dev}
out=${OUT:-examples/kubernetes/out}
rm -rf "$out" && mkdir -p "$out/rootfs/etc/ssl/certs" "$out/rootfs/var/lib/ferry" "$out/rootfs/tmp"

CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o "$out/rootfs/ferry-agent" ./examples/kubernetes
# Loki over https needs the system's CA bundle.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
	cp /etc/ssl/certs/ca-certificates.crt "$out/rootfs/etc/ssl/certs/"
fi
tar -C "$out/rootfs" --owner=0 --group=0 --numeric-owner -cf "$out/rootfs.tar" .
ls -l "$out/rootfs/ferry-agent" "$out/rootfs.tar" >&2

if command -v docker >/dev/null 2>&1; then
	docker import --change 'ENTRYPOINT ["/ferry-agent"]' --change 'USER 0' "$out/rootfs.tar" "$image" >&2
	echo "image $image" >&2
else
	echo "docker not found: import $out/rootfs.tar yourself, e.g." >&2
	echo "  podman import --change 'ENTRYPOINT [\"/ferry-agent\"]' $out/rootfs.tar $image" >&2
fi
