#!/usr/bin/env bash
# Run a command with INFINITIC_KAFKA naming a reachable Kafka cluster.
#
#   scripts/with-kafka.sh RUN_DIR PORT COMMAND...
#
# 1. If INFINITIC_KAFKA is set, it must answer: use it as it is.
# 2. Else, if the local cluster of RUN_DIR already runs, use it and leave it running.
# 3. Else start a local broker on PORT, run the command, and stop the broker afterwards,
#    whatever the command's outcome. The command's exit code is this script's exit code.
set -euo pipefail
run_dir=$1 port=$2
shift 2
cli=.venv/bin/infinitic-streams

if [[ -n "${INFINITIC_KAFKA:-}" ]]; then
  if ! "$cli" kafka info --bootstrap "$INFINITIC_KAFKA" >/dev/null; then
    echo "INFINITIC_KAFKA=$INFINITIC_KAFKA does not answer; unset it to use a local broker." >&2
    exit 1
  fi
  exec "$@"
fi

if "$cli" kafka status --run-dir "$run_dir" >/dev/null 2>&1; then
  export INFINITIC_KAFKA=$("$cli" kafka status --run-dir "$run_dir" | sed -E 's/^up: ([^ ]+).*/\1/')
  exec "$@"
fi

"$cli" kafka up --run-dir "$run_dir" --port "$port"
trap '"$cli" kafka down --run-dir "$run_dir"' EXIT
export INFINITIC_KAFKA=127.0.0.1:$port
"$@"
