#!/usr/bin/env bash
# Shows that the disk cache is keyed on the installed system packages
# (scripts/setup.sh, .cache/system-deps.bazelrc): builds one small C++ target
# with the current key (nothing to do the second time), then with a changed
# key, which must run its compile actions again instead of reusing cached
# objects, and finally with the current key again (served from the cache).
# Prints the action counts; exits 1 if a changed key did not rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh 2>/dev/null
TARGET=//kernel:errno_status

# "INFO: 5 processes: 2 disk cache hit, 2 internal, 1 local." -> the local ones.
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
ran() {
  if ! bazel build "$@" "$TARGET" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "FAIL: bazel build $TARGET failed" >&2
    exit 1
  fi
  sed -n 's/^INFO: [0-9]* process[es]*: \(.*\)\.$/\1/p' "$LOG" |
    grep -o '[0-9]* local' | cut -d' ' -f1 || true
}
current=$(sed -n 's/.*DEVMEMD_SYSTEM_DEPS=//p' .cache/system-deps.bazelrc)
echo "== current key $current"
ran >/dev/null
same=$(ran)
changed_key="check-$(date +%s%N)"
echo "== changed key $changed_key (as after a -dev package upgrade)"
changed=$(ran --action_env=DEVMEMD_SYSTEM_DEPS="$changed_key")
echo "== current key again"
back=$(ran)
echo "compile actions run: same key ${same:-0}, changed key ${changed:-0}, current key again ${back:-0}"
if [[ ${changed:-0} -lt 1 || ${same:-0} -ne 0 ]]; then
  echo "FAIL: the system package key does not decide what is rebuilt" >&2
  exit 1
fi
echo "PASS: a changed system package key rebuilds; the same key does not"
