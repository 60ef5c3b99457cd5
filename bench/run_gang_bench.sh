#!/usr/bin/env bash
# bazel run //bench:gang_bench [-- --rounds=N]
set -euo pipefail
cd "${RUNFILES_DIR:-$0.runfiles}/devmemd"
exec /usr/bin/python3 bench/gang_bench.py "$@"
