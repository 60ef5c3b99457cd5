#!/usr/bin/env bash
# The README's two commands work for a root user without sudo and for a plain
# user with sudo (scripts/as_root.sh): root goes on; a plain user with sudo is
# re-run through it; a plain user without sudo is told what to do (demo) or
# goes on unprivileged (tests). The plain user is "nobody" (setpriv); "sudo"
# is a stub on a private PATH that records how it was called, so nothing is
# really elevated. Needs root to become nobody; skips otherwise.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIPPED: needs root to run the scripts as another user (setpriv)"
  exit 0
fi
fail() { echo "FAIL: $*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/devmemd-asroot.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"
mkdir -p "$WORK/scripts" "$WORK/bin" "$WORK/bin-sudo"
cp scripts/as_root.sh scripts/demo.sh scripts/test.sh "$WORK/scripts/"
# A probe script shaped like demo.sh and test.sh.
cat >"$WORK/scripts/probe.sh" <<'PROBE'
set -euo pipefail
source "$(dirname "$0")/as_root.sh"
run_as_root ${OPTIONAL:-} "$@"
echo "probe ran as uid $(id -u) with args: $*"
PROBE
chmod -R a+rX "$WORK"
# Only the tools the scripts' first lines use: no sudo anywhere on this PATH.
for t in bash id basename dirname; do ln -s "$(command -v $t)" "$WORK/bin/$t"; done
cp -P "$WORK"/bin/* "$WORK/bin-sudo/"
cat >"$WORK/bin-sudo/sudo" <<'STUB'
#!/bin/bash
echo "sudo stub called with: $*"
STUB
chmod 0755 "$WORK/bin-sudo/sudo"

as_nobody() {  # PATHDIR CMD...
  local path=$1
  shift
  setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env -i PATH="$path" OPTIONAL="${OPTIONAL:-}" "$@" 2>&1
}

# Root: goes on, no sudo involved.
out=$(PATH="$WORK/bin" bash "$WORK/scripts/probe.sh" a b 2>&1) || fail "as root: $out"
[[ $out == "probe ran as uid 0 with args: a b" ]] || fail "as root: $out"
echo "ok: root runs the script itself"

# A plain user with sudo: re-run through sudo with the same script and args.
out=$(as_nobody "$WORK/bin-sudo" bash "$WORK/scripts/probe.sh" a b) || fail "with sudo: $out"
grep -q "not root; re-running through sudo" <<<"$out" || fail "with sudo: $out"
grep -q "sudo stub called with: --preserve-env=FUZZ_SECONDS bash $WORK/scripts/probe.sh a b" <<<"$out" ||
  fail "sudo not called as expected: $out"
grep -q "probe ran" <<<"$out" && fail "the script went on after exec sudo: $out"
echo "ok: a plain user with sudo is re-run through sudo"

# A plain user without sudo: the demo says what to do and stops.
if out=$(as_nobody "$WORK/bin" bash "$WORK/scripts/demo.sh"); then
  fail "demo.sh went on without root or sudo: $out"
fi
grep -q "needs root, and sudo is not installed" <<<"$out" || fail "demo.sh message: $out"
grep -q "su -c 'bash $WORK/scripts/demo.sh'" <<<"$out" || fail "demo.sh remedy: $out"
echo "ok: demo.sh without root or sudo: $out"

# ... and the test suite goes on unprivileged (the probe stands in for the
# rest of test.sh; its first lines are the same).
grep -q 'run_as_root --optional "\$@"' scripts/test.sh || fail "test.sh is not optional"
out=$(OPTIONAL=--optional as_nobody "$WORK/bin" bash "$WORK/scripts/probe.sh" x) ||
  fail "optional without sudo: $out"
grep -q "going on unprivileged" <<<"$out" || fail "optional message: $out"
grep -q "probe ran as uid $(id -u nobody) with args: x" <<<"$out" || fail "optional: $out"
echo "ok: test.sh without root or sudo goes on unprivileged"
echo "PASS: as_root_test"
