#!/usr/bin/env bash
# The maintainer scripts' systemd branches, which deb_test cannot reach on a
# host where systemd does not run. Each script runs in its own mount namespace
# where /run is a fresh tmpfs, with /run/systemd/system made or not, and with
# systemctl, deb-systemd-invoke, deb-systemd-helper, systemd-sysusers and
# systemd-tmpfiles replaced by stubs that log their arguments: nothing on the
# host changes. The calls each script makes are compared to the expected ones.
# postrm purge is not run here (it deletes real paths); deb_test runs it.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
HERE="${TEST_SRCDIR}/${TEST_WORKSPACE}"
SCRIPTS="$HERE/deploy/debian"
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/scripts.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# As root a plain mount namespace; otherwise one inside a user namespace.
UNSHARE=(unshare --mount --propagation private)
[[ $(id -u) -eq 0 ]] || UNSHARE=(unshare --user --map-root-user --mount --propagation private)
"${UNSHARE[@]}" true 2>/dev/null || { echo "SKIPPED: cannot make a mount namespace (${UNSHARE[*]})"; exit 0; }

mkdir "$WORK/bin"
for tool in systemctl deb-systemd-invoke deb-systemd-helper systemd-sysusers systemd-tmpfiles; do
  # STUB_FAIL="tool args" makes that one call fail; was-enabled answers
  # STUB_DISABLED (a unit the admin disabled) with 1.
  cat >"$WORK/bin/$tool" <<'EOF'
#!/bin/sh
call="$(basename "$0") $*"
echo "$call" >>"$STUB_LOG"
[ "$call" = "${STUB_FAIL:-}" ] && exit 1
case "$call" in "deb-systemd-helper --quiet was-enabled ${STUB_DISABLED:-none}") exit 1 ;; esac
exit 0
EOF
  chmod +x "$WORK/bin/$tool"
done

# run CASE SYSTEMD(yes|no) SCRIPT ARGS...: runs the script, keeps its calls in
# $WORK/CASE.calls and its output in $WORK/CASE.out; returns its exit status.
run() {
  local name=$1 systemd=$2 script=$3
  shift 3
  : >"$WORK/$name.calls"
  # shellcheck disable=SC2016 # $1 and $@ are the inner shell's.
  STUB_LOG="$WORK/$name.calls" PATH="$WORK/bin:$PATH" "${UNSHARE[@]}" sh -c '
    mount -t tmpfs devmemd-test /run
    [ "$1" = yes ] && mkdir -p /run/systemd/system
    shift
    exec "$@"' sh "$systemd" "$SCRIPTS/$script" "$@" >"$WORK/$name.out" 2>&1
}
# expect CASE: the calls (stdin) must be exactly those made.
expect() {
  diff -u - "$WORK/$1.calls" || fail "$1: other calls than expected (- expected, + made); output: $(cat "$WORK/$1.out")"
  echo "$1: ok"
}
SETUP='systemd-sysusers devmemd.conf devmem-agent.conf
systemd-tmpfiles --create devmemd.conf'

run install_systemd yes postinst configure "" || fail "install_systemd: $(cat "$WORK/install_systemd.out")"
expect install_systemd <<EOF
$SETUP
deb-systemd-helper --quiet was-enabled devmemd.socket
deb-systemd-helper enable devmemd.socket
deb-systemd-helper --quiet was-enabled devmemd.service
deb-systemd-helper enable devmemd.service
deb-systemd-helper update-state devmem-agent.service
systemctl --system daemon-reload
deb-systemd-invoke start devmemd.socket
deb-systemd-invoke start devmemd.service
EOF

run install_no_systemd no postinst configure "" || fail "install_no_systemd: $(cat "$WORK/install_no_systemd.out")"
expect install_no_systemd <<EOF
$SETUP
deb-systemd-helper --quiet was-enabled devmemd.socket
deb-systemd-helper enable devmemd.socket
deb-systemd-helper --quiet was-enabled devmemd.service
deb-systemd-helper enable devmemd.service
deb-systemd-helper update-state devmem-agent.service
EOF

# An upgrade where the admin had disabled the service: it stays disabled, and
# restart (which deb-systemd-invoke skips for a disabled unit not running).
STUB_DISABLED=devmemd.service run upgrade_disabled yes postinst configure 0.0.9 ||
  fail "upgrade_disabled: $(cat "$WORK/upgrade_disabled.out")"
expect upgrade_disabled <<EOF
$SETUP
deb-systemd-helper --quiet was-enabled devmemd.socket
deb-systemd-helper enable devmemd.socket
deb-systemd-helper --quiet was-enabled devmemd.service
deb-systemd-helper update-state devmemd.service
deb-systemd-helper update-state devmem-agent.service
systemctl --system daemon-reload
deb-systemd-invoke start devmemd.socket
deb-systemd-invoke restart devmemd.service
deb-systemd-invoke try-restart devmem-agent.service
EOF

# devmemd fails to start: the package still configures, and says where to look.
STUB_FAIL="deb-systemd-invoke start devmemd.service" run start_fails yes postinst configure "" ||
  fail "start_fails: the postinst failed: $(cat "$WORK/start_fails.out")"
grep -q 'devmemd: did not start; see systemctl status devmemd' "$WORK/start_fails.out" ||
  fail "start_fails: no pointer to the reason: $(cat "$WORK/start_fails.out")"
echo "start_fails: ok"

# set -e: a user that cannot be made fails the postinst before anything else.
if STUB_FAIL="systemd-sysusers devmemd.conf devmem-agent.conf" run sysusers_fails yes postinst configure ""; then
  fail "sysusers_fails: the postinst succeeded"
fi
expect sysusers_fails <<<"systemd-sysusers devmemd.conf devmem-agent.conf"

run remove_systemd yes prerm remove || fail "remove_systemd: $(cat "$WORK/remove_systemd.out")"
expect remove_systemd <<<"deb-systemd-invoke stop devmem-agent.service devmemd.service devmemd.socket"
run upgrade_prerm yes prerm upgrade 0.2.0 || fail "upgrade_prerm: $(cat "$WORK/upgrade_prerm.out")"
expect upgrade_prerm </dev/null
run remove_no_systemd no prerm remove || fail "remove_no_systemd: $(cat "$WORK/remove_no_systemd.out")"
expect remove_no_systemd </dev/null
STUB_FAIL="deb-systemd-invoke stop devmem-agent.service devmemd.service devmemd.socket" run stop_fails yes prerm remove ||
  fail "stop_fails: the prerm failed, so the package could never be removed"
echo "stop_fails: ok"

run postrm_remove yes postrm remove || fail "postrm_remove: $(cat "$WORK/postrm_remove.out")"
expect postrm_remove <<<"systemctl --system daemon-reload"
run postrm_upgrade yes postrm upgrade 0.2.0 || fail "postrm_upgrade: $(cat "$WORK/postrm_upgrade.out")"
expect postrm_upgrade </dev/null
echo "PASS: postinst, prerm and postrm make the expected calls with and without systemd"
