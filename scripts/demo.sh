#!/usr/bin/env bash
# The main job, end to end: devmemd prepares a NIC, binds a workload's device
# memory and hands it a steered TCP socket; the workload is unprivileged.
# Everything runs in two network namespaces joined by a veth pair that this
# script creates and removes; no other address is touched.
#
#   1. install missing Debian packages and build (bazel, offline);
#   2. create namespaces devmemd-demo-a/-b and veth dm-a (10.77.9.1) <-> dm-b;
#   3. start devmemd in namespace A on the REAL kernel backend with a profile for
#      dm-a: it reports why veth is not devmem-capable (no header split, ntuple
#      or RSS, with the kernel's errno) and touches nothing;
#   4. restart it with the SIMULATED devmem NIC over dm-a (no hardware here can
#      do devmem): the profile is recorded and applied (nic show);
#   5. as nobody (no capabilities), bind 64 MiB of stand-in device memory, get a
#      listening socket on dm-a with an ntuple rule steering it to the bound
#      queue, and receive 64 MiB from namespace B, checking every byte;
#   6. live restart: devmemd is killed with SIGKILL while the client holds its
#      binding and rule, and started again; it replays its journal, checks it
#      against the NIC, and the client resumes its session on its own;
#   7. the client exits: its rule and binding are released; devmemd stops and
#      restores the NIC.
set -euo pipefail
# Root for the network namespaces and devmemd: through sudo if need be.
source "$(dirname "$0")/as_root.sh"
run_as_root "$@"
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== building"
bazel build //daemon:devmemd //client:devmemctl //tests/tools:pattern_peer 2>&1 | tail -n 2

DEVMEMD=$PWD/bazel-bin/daemon/devmemd
source tests/integration/netns_lib.sh
WORK=$(mktemp -d /tmp/devmemd-demo.XXXXXX)
chmod 0755 "$WORK"
install -m 0755 bazel-bin/client/devmemctl "$WORK/devmemctl"
PEER=$PWD/bazel-bin/tests/tools/pattern_peer
RUN=$WORK/run
NOBODY=$(id -u nobody)
NOGROUP=$(getent group nogroup | cut -d: -f3)

echo "== namespaces and veth"
make_veth_pair demo 9
echo "   $NS_A: dm-a 10.77.9.1   <->   $NS_B: dm-b 10.77.9.2"

STATE=$WORK/state
as_nobody() {
  ip netns exec "$NS_A" setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups -- "$@"
}
ctl() { as_nobody "$WORK/devmemctl" --runtime_dir="$RUN" "$@"; }
stop_daemon() {
  kill -TERM "$DAEMON_PID"
  wait "$DAEMON_PID" || fail "devmemd exited with an error"
  DAEMON_PID=""
}

echo "== 1. devmemd in $NS_A on the real kernel backend, profile for dm-a"
start_daemon "$NS_A" "$RUN" --allow_uids="$NOBODY" --allow_gids=0 --socket_group=nogroup \
  --nic=dm-a --state_dir="$STATE" || fail "devmemd did not start"
sed 's/^/   /' "$WORK/devmemd.log"
echo "== devmemctl status (as uid $NOBODY)"
ctl status | sed 's/^/   /'
echo "== devmemctl nic show dm-a (as uid $NOBODY)"
ctl nic show dm-a | sed 's/^/   /'
stop_daemon

echo "== 2. devmemd with the SIMULATED devmem NIC over dm-a (demo backend)"
rm -rf "$RUN"
start_daemon "$NS_A" "$RUN" --allow_uids="$NOBODY" --allow_gids=0 --socket_group=nogroup \
  --nic=dm-a --state_dir="$STATE" --nic_backend=simulated || fail "devmemd did not start"
sed 's/^/   /' "$WORK/devmemd.log"
echo "== devmemctl nic show dm-a (original recorded in $STATE before any change)"
ctl nic show dm-a | sed 's/^/   /'

echo "== unprivileged client: bind 64 MiB, listen on dm-a with steering, receive 64 MiB from $NS_B"
ctl listen --nic=dm-a --addr=10.77.9.1 --port=7000 --bind_memfd_mb=64 --queues=1 \
  --expect_pattern 2>&1 | tee "$WORK/client.log" | sed 's/^/   client: /' &
listener=$!
deadline=$((SECONDS + 10))
until ip netns exec "$NS_A" ss -Hltn "sport = :7000" | grep -q LISTEN; do
  ((SECONDS > deadline)) && fail "the client never got its socket"
  sleep 0.05
done
ip netns exec "$NS_A" ss -Hltnp "sport = :7000" 2>/dev/null | sed 's/^/   socket: /'
echo "== live restart: kill -9 devmemd while the client holds its binding and rule, start it again"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
ip netns exec "$NS_A" ip link set lo up
start_daemon "$NS_A" "$RUN" --allow_uids="$NOBODY" --allow_gids=0 --socket_group=nogroup \
  --nic=dm-a --state_dir="$STATE" --nic_backend=simulated \
  --metrics_listen=127.0.0.1:9464 || fail "devmemd did not restart"
grep -E "journal|recovery|detached|metrics" "$WORK/devmemd.log" | sed 's/^/   /'
deadline=$((SECONDS + 20))
until grep -q "session resumed" "$WORK/client.log"; do
  ((SECONDS > deadline)) && fail "the client did not resume its session"
  sleep 0.05
done
ctl status | grep -E "^(bindings|rules|detached_sessions):" | sed 's/^/   /'
echo "== Prometheus metrics and health (http://127.0.0.1:9464 in $NS_A)"
http_get() {
  ip netns exec "$NS_A" python3 -c '
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
' "http://127.0.0.1:9464$1"
}
echo "   /healthz: $(http_get /healthz)"
http_get /metrics | grep -E '^devmemd_(sessions|leases|bindings|rules|queues)\{' |
  grep -v ' 0$' | sed 's/^/   /'
ip netns exec "$NS_B" "$PEER" send --to=10.77.9.1:7000 --bytes=$((64 << 20)) | sed 's/^/   sender: /'
wait "$listener" || fail "the client reported an error"
echo "== after the client exited: its rule, binding and queue are released"
deadline=$((SECONDS + 10))
until ctl nic show dm-a --json | grep -q '"bindings":0'; do
  ((SECONDS > deadline)) && fail "the lease was not released"
  sleep 0.05
done
ctl nic show dm-a | grep -E "free queues|bindings|rules" | sed 's/^/   /'
stop_daemon
echo "== devmemd stopped:"
grep "original state restored" "$WORK/devmemd.log" | sed 's/^/   /'
echo "== done: the client (uid $NOBODY, no capabilities) got a binding and a steered socket, and received every byte intact"
