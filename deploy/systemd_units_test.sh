#!/usr/bin/env bash
# deploy/systemd with systemd's own tools, in a throwaway root:
#  - systemd-analyze verify of devmemd.service and devmemd.socket is clean
#    (ExecStart is the devmemd just built, installed where the unit says);
#  - systemd-analyze security --offline: exposure 2.0 or lower (printed);
#  - the same for devmem-agent.service (Type=notify, after devmemd, no
#    capabilities);
#  - systemd-sysusers makes the devmemd user and group from devmemd.sysusers,
#    and the devmem-agent user, in group devmemd;
#  - systemd-tmpfiles makes /run/devmemd (0755) and /var/lib/devmemd (0700)
#    owned by devmemd.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool is not installed"; exit 0; }
done
HERE="${TEST_SRCDIR}/${TEST_WORKSPACE}"
ROOT=$(mktemp -d "${TEST_TMPDIR:-/tmp}/sdroot.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/usr/sbin" "$ROOT/usr/lib/systemd" "$ROOT/etc/systemd/system" \
  "$ROOT/usr/lib/sysusers.d" "$ROOT/usr/lib/tmpfiles.d"
cp "$HERE/daemon/devmemd" "$ROOT/usr/sbin/devmemd"
cp "$HERE/agent/devmem-agent" "$ROOT/usr/sbin/devmem-agent"
mkdir -p "$ROOT/bin" && cp /bin/kill "$ROOT/bin/kill"  # devmem-agent's ExecReload
# The targets and slices the units depend on come from the host.
cp -r /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
cp "$HERE/deploy/systemd/devmemd.service" "$HERE/deploy/systemd/devmemd.socket" \
  "$HERE/deploy/systemd/devmem-agent.service" "$ROOT/etc/systemd/system/"
cp "$HERE/deploy/systemd/devmemd.sysusers" "$ROOT/usr/lib/sysusers.d/devmemd.conf"
cp "$HERE/deploy/systemd/devmem-agent.sysusers" "$ROOT/usr/lib/sysusers.d/devmem-agent.conf"
cp "$HERE/deploy/systemd/devmemd.tmpfiles" "$ROOT/usr/lib/tmpfiles.d/devmemd.conf"
touch "$ROOT/etc/passwd" "$ROOT/etc/group"

echo "== systemd-analyze verify"
out=$(systemd-analyze verify --root="$ROOT" /etc/systemd/system/devmemd.service \
  /etc/systemd/system/devmemd.socket /etc/systemd/system/devmem-agent.service 2>&1) ||
  fail "verify failed: $out"
[[ -z $out ]] || fail "verify is not clean: $out"

echo "== systemd-analyze security --offline"
# exposure UNIT: prints the level and fails above 2.0.
exposure() {
  local sec level
  sec=$(systemd-analyze security --offline=true --root="$ROOT" \
    "/etc/systemd/system/$1" 2>&1) || true
  echo "$sec" | grep -E "Overall exposure" >&2
  level=$(echo "$sec" | sed -n "s/.*Overall exposure level for $1: \\([0-9.]*\\).*/\\1/p")
  [[ -n $level ]] || fail "no exposure level for $1 in: $sec"
  awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "$1: exposure $level is above 2.0"
  echo "$level"
}
level=$(exposure devmemd.service)
agent_level=$(exposure devmem-agent.service)
grep -q '^Type=notify$' "$ROOT/etc/systemd/system/devmem-agent.service" || fail "devmem-agent is not Type=notify"
grep -q '^After=devmemd.service' "$ROOT/etc/systemd/system/devmem-agent.service" || fail "devmem-agent is not ordered after devmemd"
grep -q '^CapabilityBoundingSet=$' "$ROOT/etc/systemd/system/devmem-agent.service" || fail "devmem-agent may hold capabilities"

echo "== systemd-sysusers"
out=$(systemd-sysusers --root="$ROOT" devmemd.conf devmem-agent.conf 2>&1)
echo "$out"
grep -qi "invalid\|fail\|ignor" <<<"$out" && fail "sysusers complained: $out"
grep -q '^devmemd:x:[0-9]*:[0-9]*:.*:/var/lib/devmemd:/usr/sbin/nologin$' "$ROOT/etc/passwd" ||
  fail "no devmemd user: $(cat "$ROOT/etc/passwd")"
grep -q '^devmemd:' "$ROOT/etc/group" || fail "no devmemd group"
grep -q '^devmem-agent:x:[0-9]*:[0-9]*:' "$ROOT/etc/passwd" || fail "no devmem-agent user"
grep -q '^devmemd:x:[0-9]*:devmem-agent$' "$ROOT/etc/group" || fail "devmem-agent is not in group devmemd: $(grep devmemd "$ROOT/etc/group")"

echo "== systemd-tmpfiles"
out=$(systemd-tmpfiles --root="$ROOT" --create devmemd.conf 2>&1)
[[ -z $out ]] || fail "tmpfiles complained: $out"
uid=$(awk -F: '$1 == "devmemd" { print $3 }' "$ROOT/etc/passwd")
[[ $(stat -c '%a %u' "$ROOT/run/devmemd") == "755 $uid" ]] || fail "/run/devmemd: $(stat -c '%a %u' "$ROOT/run/devmemd")"
[[ $(stat -c '%a %u' "$ROOT/var/lib/devmemd") == "700 $uid" ]] || fail "/var/lib/devmemd: $(stat -c '%a %u' "$ROOT/var/lib/devmemd")"
echo "PASS: units verify, exposure devmemd $level, devmem-agent $agent_level; users and directories made"
