#!/bin/sh
# Services of one instance run in separate containers and reach each other with the internal
# token: without it they could not talk, so refuse to start and name the variable.
if [ -z "${CPM_INTERNAL_TOKEN:-}" ]; then
  echo "cpm: configuration error: CPM_INTERNAL_TOKEN: not set; put one in .env (openssl rand -base64 32)" >&2
  exit 1
fi
exec node "$@"
