#!/bin/sh
# Services of one instance run in separate containers and reach each other with the internal
# token: without it they could not talk, so refuse to start and name the variable.
if [ -z "${CPM_INTERNAL_TOKEN:-}" ]; then
  echo "cpm: configuration error: CPM_INTERNAL_TOKEN: not set; put one in .env (openssl rand -base64 32)" >&2
  exit 1
fi
# The memory defaults the launcher gives services (libs/launcher/src/node-runtime.ts), unless set.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
case " ${NODE_OPTIONS:-} " in
  *--max-semi-space-size*) ;;
  *) set -- --max-semi-space-size=2 "$@" ;;
esac
exec node "$@"
