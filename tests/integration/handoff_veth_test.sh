#!/usr/bin/env bash
# Hand-off integration test on the real kernel:
#  1. two network namespaces joined by a veth pair;
#  2. devmemd runs in namespace A;
#  3. a client that dropped to uid nobody gets a listening socket bound to the veth;
#  4. a sender in namespace B streams 64 MiB of a known pattern;
#  5. the client checks every byte.
# Also: a uid that is not allowed gets PERMISSION_DENIED; an unknown NIC gets
# NOT_FOUND naming the NICs that exist; IPv6 works the same way.
set -euo pipefail
source tests/integration/netns_lib.sh
skip_unless_root "handoff_veth_test"

DEVMEMD=$PWD/daemon/devmemd
WORK=$(mktemp -d /tmp/devmemd-handoff.XXXXXX)
chmod 0755 "$WORK"
# Runfiles live under /root (mode 0700): give nobody its own copy of the client.
install -m 0755 client/devmemctl "$WORK/devmemctl"
PEER=$PWD/tests/tools/pattern_peer
RUN=$WORK/run
NOBODY=$(id -u nobody)
NOGROUP=$(getent group nogroup | cut -d: -f3)
as_nobody() { setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups -- "$@"; }

make_veth_pair handoff 3
start_daemon "$NS_A" "$RUN" --allow_uids="$NOBODY" --socket_group=nogroup ||
  fail "devmemd did not start"

# The unprivileged client really is unprivileged.
ip netns exec "$NS_A" setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups \
  -- sh -c 'grep -q "^CapEff:[[:space:]]*0000000000000000" /proc/self/status' ||
  fail "client still has capabilities"

status=$(ip netns exec "$NS_A" setpriv --reuid="$NOBODY" --regid="$NOGROUP" \
  --clear-groups -- "$WORK/devmemctl" --runtime_dir="$RUN" status) ||
  fail "devmemctl status as nobody failed: $status"
echo "$status"
grep -q "$NOBODY" <<<"$status" || fail "status does not show peer uid $NOBODY"

for family in 4 6; do
  if [[ $family == 4 ]]; then addr=10.77.3.1; to=10.77.3.1:7001; port=7001
  else addr=fd77:3::1; to="[fd77:3::1]:7002"; port=7002; fi
  ip netns exec "$NS_A" setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups \
    -- "$WORK/devmemctl" --runtime_dir="$RUN" listen --nic=dm-a --addr="$addr" \
    --port="$port" --expect_pattern >"$WORK/listen$family.out" 2>"$WORK/listen$family.err" &
  listener=$!
  # Wait until the handed-over socket is listening inside namespace A.
  deadline=$((SECONDS + 10))
  until ip netns exec "$NS_A" ss -Hltn "sport = :$port" | grep -q LISTEN; do
    ((SECONDS > deadline)) && fail "no listener on port $port: $(cat "$WORK/listen$family.err")"
    sleep 0.05
  done
  # The listening socket is owned by the nobody process and bound to dm-a.
  ip netns exec "$NS_A" ss -Hltnpe "sport = :$port" | grep -q "%dm-a" ||
    fail "listener is not bound to dm-a: $(ip netns exec "$NS_A" ss -Hltnpe "sport = :$port")"
  ip netns exec "$NS_B" "$PEER" send --to="$to" --bytes=$((64 << 20)) ||
    fail "sender failed (IPv$family)"
  wait "$listener" || fail "listener failed (IPv$family): $(cat "$WORK/listen$family.err")"
  cat "$WORK/listen$family.err"
  grep -q "67108864" "$WORK/listen$family.err" "$WORK/listen$family.out" ||
    fail "client did not report 67108864 bytes (IPv$family)"
done

# Unknown NIC: NOT_FOUND naming the NICs that exist.
if out=$(ip netns exec "$NS_A" setpriv --reuid="$NOBODY" --regid="$NOGROUP" \
  --clear-groups -- "$WORK/devmemctl" --runtime_dir="$RUN" listen --nic=eth99 \
  --port=7003 2>&1); then
  fail "listen on an unknown NIC succeeded"
fi
echo "$out"
grep -q "NOT_FOUND" <<<"$out" || grep -q "not found" <<<"$out" || fail "no NOT_FOUND: $out"
grep -q "dm-a" <<<"$out" || fail "NOT_FOUND message does not list dm-a: $out"

# A uid in the socket group but not allowed: PERMISSION_DENIED.
if out=$(ip netns exec "$NS_A" setpriv --reuid=12345 --regid="$NOGROUP" \
  --clear-groups -- "$WORK/devmemctl" --runtime_dir="$RUN" status 2>&1); then
  fail "uid 12345 was allowed"
fi
echo "$out"
grep -qi "permission" <<<"$out" || fail "no PERMISSION_DENIED for uid 12345: $out"

echo "PASS: handoff_veth_test"
