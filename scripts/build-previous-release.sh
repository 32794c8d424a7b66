#!/bin/sh
# Builds the previous release (scripts/previous-release.env) from git into
#   .cache/previous-release/<commit>/
# and prints that path: its sources at the recorded commit (git archive: a plain tree, no
# worktree registered in this repository), its dependencies (npm ci, from npm's cache when it
# has them), its services built, and the Caddy it pins (this repository's build when both pin
# the same versions, else its own). Already built: prints the path and returns at once.
# Needs the commit in this clone's history (CI clones main with its history).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/previous-release.env"
commit=$PREVIOUS_RELEASE_COMMIT
dir="$root/.cache/previous-release/$commit"
stamp="$dir/.cpm-previous-release-built"
say() { echo "previous-release: $*" >&2; }

if [ -f "$stamp" ]; then
  echo "$dir"
  exit 0
fi

if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
  say "commit $commit (release $PREVIOUS_RELEASE_VERSION) is not in this clone: fetch the history (git fetch --unshallow)"
  exit 1
fi

start=$(date +%s)
# A build that stopped part-way is started over.
rm -rf "$dir"
mkdir -p "$dir"
say "building release $PREVIOUS_RELEASE_VERSION ($commit) in $dir"
git -C "$root" archive --format=tar "$commit" | tar -x -C "$dir"

cd "$dir"
# Its dependencies without their install scripts, then each script run: a native module this
# repository has already compiled at the same version is copied (compiling SQLite twice takes
# minutes), any other is built as `npm ci` would build it.
npm ci --prefer-offline --no-audit --no-fund --loglevel=error --ignore-scripts >&2
rebuild=""
version() { node -p "try { require('$1/package.json').version } catch { '' }"; }
for pkg in $(node -e '
  const lock = require("./package-lock.json").packages;
  for (const [p, v] of Object.entries(lock)) if (p && v.hasInstallScript) console.log(p);
'); do
  if [ -f "$dir/$pkg/binding.gyp" ] && [ -d "$root/$pkg/build/Release" ] &&
    [ "$(version "$dir/$pkg")" = "$(version "$root/$pkg")" ]; then
    cp -a "$root/$pkg/build" "$dir/$pkg/"
  else
    name=${pkg##*node_modules/}
    case " $rebuild " in *" $name "*) ;; *) rebuild="$rebuild $name" ;; esac
  fi
done
# shellcheck disable=SC2086 # one argument per package
[ -z "$rebuild" ] || npm rebuild --no-audit --no-fund --loglevel=error $rebuild >&2
# What `npm run build:run` builds. --force and a cache of its own: this tree sits in this repository's
# ignored .cache/, where turbo cannot hash its files from git, so no cached output may stand in for
# a build (and none is written to the cache this repository's builds share).
TURBO_TELEMETRY_DISABLED=1 npx --no-install turbo run build --filter='!@cpm/tests' --output-logs=errors-only \
  --force --cache-dir="$dir/.turbo/cache" >&2

# Its Caddy: this repository's build when the pinned versions are the same, else its own.
if cmp -s "$root/scripts/caddy-versions.env" "$dir/scripts/caddy-versions.env"; then
  bin=$(sh "$root/scripts/build-caddy.sh")
  . "$dir/scripts/caddy-versions.env"
  mkdir -p "$dir/.cache/caddy/$CADDY_VERSION-$CADDY_L4_VERSION-$XCADDY_VERSION"
  # A hard link (a copy across file systems): it stays valid when this repository moves.
  target="$dir/.cache/caddy/$CADDY_VERSION-$CADDY_L4_VERSION-$XCADDY_VERSION/caddy"
  ln -f "$bin" "$target" 2>/dev/null || cp "$bin" "$target"
else
  say "it pins other Caddy versions than this build: building its own"
  sh "$dir/scripts/build-caddy.sh" >/dev/null
fi

echo "$commit" >"$stamp"
say "built in $(($(date +%s) - start)) s"
echo "$dir"
