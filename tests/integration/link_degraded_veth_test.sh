#!/usr/bin/env bash
# Link down/up under a live lease, on the real kernel: devmemd (simulated devmem
# NIC over a real veth, dm-a, in a namespace this test creates) holds a binding
# and a steering rule for a client that waits for a connection. `ip link set
# dm-a down` (the real kernel) must mark the NIC's leases degraded in
# `devmemctl status` and `nic show`, with the reason; nothing crashes and the
# lease stays. Link up clears it, and the stream then flows with every byte
# checked.
set -euo pipefail
source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/integration/netns_lib.sh"
skip_unless_root "link_degraded_veth_test"

DEVMEMD="${TEST_SRCDIR}/${TEST_WORKSPACE}/daemon/devmemd"
CTL="${TEST_SRCDIR}/${TEST_WORKSPACE}/client/devmemctl"
PEER="${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/tools/pattern_peer"
WORK=$(mktemp -d /tmp/devmemd-ld.XXXXXX)
RUN=$WORK/run
make_veth_pair ld 33

in_a() { ip netns exec "$NS_A" "$@"; }
ctl() { in_a "$CTL" --runtime_dir="$RUN" "$@"; }

start_daemon "$NS_A" "$RUN" --allow_uids=0 --nic=dm-a --nic_backend=simulated ||
  fail "devmemd did not start"

ctl listen --nic=dm-a --addr=10.77.33.1 --port=7301 --bind_memfd_mb=1 --queues=1 \
  --expect_pattern >"$WORK/listen.out" 2>"$WORK/listen.err" &
listener=$!
deadline=$((SECONDS + 10))
until in_a ss -Hltn "sport = :7301" | grep -q LISTEN; do
  ((SECONDS > deadline)) && fail "the client never got its socket: $(cat "$WORK/listen.err")"
  sleep 0.05
done
status=$(ctl status)
grep -q "^bindings: 1" <<<"$status" || fail "no binding held: $status"
if grep -q "^degraded:" <<<"$status"; then fail "degraded while healthy: $status"; fi

echo "== link down"
in_a ip link set dm-a down
status=$(ctl status) || fail "status failed with the link down"
echo "$status" | grep '^degraded:' | sed 's/^/   /'
grep -q "^degraded: dm-a: link is down" <<<"$status" ||
  fail "link down not reported as degraded: $status"
grep -q "1 binding(s) degraded" <<<"$status" || fail "the lease is not named: $status"
grep -q "^bindings: 1" <<<"$status" || fail "the lease was dropped: $status"
ctl nic show dm-a | grep -q "degraded: *link is down" || fail "nic show does not say degraded"
kill -0 "$DAEMON_PID" || fail "devmemd died"

echo "== link up"
in_a ip link set dm-a up
deadline=$((SECONDS + 10))
while ctl status | grep -q "^degraded:"; do
  ((SECONDS > deadline)) && fail "still degraded after link up: $(ctl status)"
  sleep 0.1
done
ip netns exec "$NS_B" "$PEER" send --to=10.77.33.1:7301 --bytes=$((4 << 20)) >/dev/null
wait "$listener" || fail "client failed after the link came back: $(cat "$WORK/listen.err")"
echo "PASS: link down marks the lease degraded, link up heals it, the stream is intact"
