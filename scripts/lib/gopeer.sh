# Sourced by the scripts/setup/*.sh that build a peer from its Go module.
#
#   gopeer_build NAME PKG VERSION BINARY
#
# builds PKG@VERSION with go install into "$FERRY_PEERS_DIR/bin/NAME-VERSION"
# (default ~/.cache/ferry-peers) unless it is there, and prints the path. It
# builds outside any module, so that Ferry's go.mod is not touched, and
# retries with GOTOOLCHAIN=go1.27.3 if the local Go is too old for the module.
# BINARY is the name go install gives the program.
gopeer_build() {
	local name=$1 pkg=$2 version=$3 binary=$4
	local bindir="${FERRY_PEERS_DIR:-$HOME/.cache/ferry-peers}/bin"
	local bin="$bindir/$name-$version"
	mkdir -p "$bindir"
	if [ ! -x "$bin" ]; then
		echo "building $name $version into $bindir" >&2
		local tmp
		tmp="$(mktemp -d)"
		if ! (cd "$tmp" && GOFLAGS=-buildvcs=false GOBIN="$tmp" go install "$pkg@$version") >&2; then
			echo "retrying with GOTOOLCHAIN=go1.27.3" >&2
			(cd "$tmp" && GOFLAGS=-buildvcs=false GOTOOLCHAIN=go1.27.3 GOBIN="$tmp" go install "$pkg@$version") >&2 ||
				{ rm -rf "$tmp"; return 1; }
		fi
		mv "$tmp/$binary" "$bin" || { rm -rf "$tmp"; return 1; }
		rm -rf "$tmp"
	fi
	echo "$bin"
}
