#!/usr/bin/env bash
# Link down/up under a live lease, on the real kernel: devmemd (simulated devmem
# NIC over a real veth, dm-a, in a namespace this test creates) holds a binding
# and a steering rule for a client that waits for a connection. `ip link set
# dm-a down` (the real kernel) must mark the NIC's leases degraded in
# `devmemctl status` and `nic show`, with the reason; nothing crashes and the
# lease stays. Link up clears it, and the stream then flows with every byte
# checked. The same is watched over HTTP: /healthz goes ready -> degraded
# (naming nic/dm-a and the reason) -> ready, and /metrics shows the lease
# (binding, rule, the bound queue) and devmemd_nic_degraded.
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

# The metrics endpoint is on the namespace's own loopback.
in_a ip link set lo up
start_daemon "$NS_A" "$RUN" --allow_uids=0 --nic=dm-a --nic_backend=simulated \
  --metrics_listen=127.0.0.1:0 || fail "devmemd did not start"
URL=$(sed -n 's|.*metrics: \(http://127[^/]*\)/metrics.*|\1|p' "$WORK/devmemd.log")
[[ -n $URL ]] || fail "devmemd did not say where its metrics are"
# http_get PATH: the HTTP status on the first line, then the body (python3's
# urllib, inside the namespace).
http_get() {
  in_a python3 -c '
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
' "$URL$1"
}

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
grep -q "^health: ready" <<<"$status" || fail "status health is not ready: $status"
health=$(http_get /healthz)
[[ $(head -1 <<<"$health") == 200 ]] || fail "/healthz: $health"
grep -q '"state":"ready"' <<<"$health" || fail "not ready: $health"
metrics=$(http_get /metrics)
for want in 'devmemd_bindings{nic="dm-a",direction="rx"} 1' \
  'devmemd_leases{nic="dm-a"} 1' 'devmemd_rules{nic="dm-a"} 1' \
  'devmemd_queues{nic="dm-a",state="used"} 1' 'devmemd_nic_degraded{nic="dm-a"} 0' \
  'devmemd_kernel_stats_supported{nic="dm-a",source="qstats"} 0' \
  'devmemd_fd_handoffs_total{direction="to_client",kind="socket"} 1'; do
  grep -qF "$want" <<<"$metrics" || fail "/metrics lacks: $want"
done
# The simulated NIC reports its bound queue as the kernel would (queue-get).
grep -qE '^devmemd_queue_dmabuf_bound\{nic="dm-a",queue="[0-9]+"\} 1$' <<<"$metrics" ||
  fail "/metrics lacks the bound queue: $(grep dmabuf_bound <<<"$metrics")"

echo "== link down"
in_a ip link set dm-a down
status=$(ctl status) || fail "status failed with the link down"
echo "$status" | grep '^degraded:' | sed 's/^/   /'
grep -q "^degraded: dm-a: link is down" <<<"$status" ||
  fail "link down not reported as degraded: $status"
grep -q "1 binding(s) degraded" <<<"$status" || fail "the lease is not named: $status"
grep -q "^bindings: 1" <<<"$status" || fail "the lease was dropped: $status"
grep -q "^health: degraded" <<<"$status" || fail "status health is not degraded: $status"
grep -q "^health_reason: nic/dm-a: dm-a: link is down" <<<"$status" ||
  fail "status does not give the health reason: $status"
ctl nic show dm-a | grep -q "degraded: *link is down" || fail "nic show does not say degraded"
health=$(http_get /healthz)
echo "   /healthz: $(tail -n +2 <<<"$health")"
[[ $(head -1 <<<"$health") == 200 ]] || fail "/healthz while degraded: $health"
grep -q '"state":"degraded"' <<<"$health" || fail "/healthz not degraded: $health"
grep -q '"component":"nic/dm-a","message":"dm-a: link is down' <<<"$health" ||
  fail "/healthz does not name the NIC and reason: $health"
metrics=$(http_get /metrics)
grep -qF 'devmemd_nic_degraded{nic="dm-a"} 1' <<<"$metrics" || fail "metric not degraded"
grep -qF 'devmemd_health_state{state="degraded"} 1' <<<"$metrics" ||
  fail "devmemd_health_state is not degraded"
kill -0 "$DAEMON_PID" || fail "devmemd died"

echo "== link up"
in_a ip link set dm-a up
deadline=$((SECONDS + 10))
while ctl status | grep -q "^degraded:"; do
  ((SECONDS > deadline)) && fail "still degraded after link up: $(ctl status)"
  sleep 0.1
done
health=$(http_get /healthz)
grep -q '"state":"ready"' <<<"$health" || fail "/healthz not ready after link up: $health"
ip netns exec "$NS_B" "$PEER" send --to=10.77.33.1:7301 --bytes=$((4 << 20)) >/dev/null
wait "$listener" || fail "client failed after the link came back: $(cat "$WORK/listen.err")"
echo "PASS: link down marks the lease degraded (status, nic show, /healthz, /metrics), link up heals it, the stream is intact"
