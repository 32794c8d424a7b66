#!/bin/sh
# A service run alone (`services/<service>/dist/main.js`, one container per service) reaches the
# other services of its instance with the internal token: without it they could not talk, so
# refuse to start and name the variable. The launcher (`libs/launcher/dist/main.js`, the
# one-container variant) runs the whole node in one process and needs none.
case "${1:-}" in
  libs/launcher/dist/main.js | /app/libs/launcher/dist/main.js) ;;
  *)
    if [ -z "${CPM_INTERNAL_TOKEN:-}" ]; then
      echo "cpm: configuration error: CPM_INTERNAL_TOKEN: not set; put one in .env (openssl rand -base64 32)" >&2
      exit 1
    fi
    ;;
esac
# The memory defaults the launcher gives services (libs/launcher/src/node-runtime.ts), unless set.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
case " ${NODE_OPTIONS:-} " in
  *--max-semi-space-size*) ;;
  *) set -- --max-semi-space-size=2 "$@" ;;
esac
exec node --liftoff-only "$@"
