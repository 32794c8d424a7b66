#!/bin/sh
# Runs node with the memory defaults of the project's Node processes, unless the operator set
# them (libs/launcher/src/node-runtime.ts says why; docker/entrypoint.sh does the same in the
# images): MALLOC_ARENA_MAX=2, --max-semi-space-size=2 unless NODE_OPTIONS has it, and
# --liftoff-only (a V8 flag NODE_OPTIONS cannot carry: an operator's --no-liftoff-only among the
# arguments, which come after it, wins). It execs: the pid is node's, so signals and service
# managers reach node itself.
#   sh scripts/node.sh libs/launcher/dist/main.js
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
case " ${NODE_OPTIONS:-} " in
  *--max-semi-space-size*) exec "${NODE:-node}" --liftoff-only "$@" ;;
  *) exec "${NODE:-node}" --liftoff-only --max-semi-space-size=2 "$@" ;;
esac
