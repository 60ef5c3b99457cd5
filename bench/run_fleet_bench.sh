#!/usr/bin/env bash
# bazel run //bench:fleet_bench [-- --iterations=N --fill=N]
set -euo pipefail
cd "${RUNFILES_DIR:-$0.runfiles}/devmemd"
exec /usr/bin/python3 bench/fleet_bench.py "$@"
