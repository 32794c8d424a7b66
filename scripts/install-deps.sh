#!/bin/sh
# What an instance needs from Debian/Ubuntu packages: Caddy (Debian's 2.6, the fallback without
# L4; `npm run caddy:build` builds the project's Caddy with caddy-l4) and openssl. Runs as root,
# or through sudo for a user; installs only what is missing.
set -eu
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
need=""
command -v caddy >/dev/null 2>&1 || need="$need caddy"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
if [ -n "$need" ]; then
  as_root apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
