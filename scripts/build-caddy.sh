#!/bin/sh
# Builds Caddy with the layer4 app (caddy-l4) at the versions pinned in
# scripts/caddy-versions.env, with xcaddy, into
#   .cache/caddy/<caddy>-<caddy-l4>-<xcaddy>/caddy
# and prints that path. Already built with these versions: nothing to do.
# Needs Go (on PATH or at /usr/local/go) and the Go module proxy. POSIX sh, so it also runs
# in docker/caddy.Dockerfile's Alpine build stage.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/caddy-versions.env"
dir="$root/.cache/caddy/$CADDY_VERSION-$CADDY_L4_VERSION-$XCADDY_VERSION"
bin="$dir/caddy"
say() { echo "caddy:build: $*" >&2; }

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  PATH="/usr/local/go/bin:$PATH"
  export PATH
fi
if ! command -v go >/dev/null 2>&1; then
  say "Go is needed to build Caddy $CADDY_VERSION with caddy-l4 $CADDY_L4_VERSION and was not found"
  say "(not on PATH, not at /usr/local/go/bin/go). Install Go from https://go.dev/dl/ into /usr/local/go,"
  say "or point CPM_CADDY_BIN at a Caddy you have (without the layer4 module, L4 proxy hosts are not served)."
  exit 1
fi

mkdir -p "$dir"
work=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
say "building Caddy $CADDY_VERSION with caddy-l4 $CADDY_L4_VERSION (xcaddy $XCADDY_VERSION, $(go version | cut -d' ' -f3)); this takes a few minutes"
GOBIN="$work/bin" go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
# xcaddy builds in a temporary module of its own; run it from $work so no go.mod around is used.
(cd "$work" && "$work/bin/xcaddy" build "$CADDY_VERSION" \
  --with "github.com/mholt/caddy-l4@$CADDY_L4_VERSION" \
  --output "$work/caddy") >&2
if ! "$work/caddy" list-modules | grep -qx layer4; then
  say "the built binary has no layer4 module; not caching it"
  exit 1
fi
# Rename within one directory: a concurrent reader sees no binary or the whole one.
mv "$work/caddy" "$bin"
say "built $("$bin" version | cut -d' ' -f1) with layer4"
echo "$bin"
