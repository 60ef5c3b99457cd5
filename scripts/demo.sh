#!/usr/bin/env bash
# The main job, end to end: devmemd hands a NIC-bound TCP socket to an
# unprivileged client. Everything runs in two network namespaces joined by a veth
# pair that this script creates and removes; no other address is touched.
#
#   1. install missing Debian packages and build (bazel, offline);
#   2. create namespaces devmemd-demo-a/-b and veth dm-a (10.77.9.1) <-> dm-b;
#   3. start devmemd in namespace A, allowing uid nobody through group nogroup;
#   4. show the inventory (what the kernel says about dm-a, and why it is not
#      devmem-capable: veth has no header split, ntuple or RSS);
#   5. as nobody (no capabilities), get a listening socket bound to dm-a from
#      devmemd, and receive 64 MiB from namespace B, checking every byte.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (network namespaces, and it runs devmemd); try: sudo $0" >&2
  exit 1
fi
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

echo "== starting devmemd in $NS_A (backend: kernel)"
start_daemon "$NS_A" "$RUN" --allow_uids="$NOBODY" --allow_gids=0 --socket_group=nogroup ||
  fail "devmemd did not start"
sed 's/^/   /' "$WORK/devmemd.log"

as_nobody() {
  ip netns exec "$NS_A" setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups -- "$@"
}
echo "== devmemctl status (as uid $NOBODY)"
as_nobody "$WORK/devmemctl" --runtime_dir="$RUN" status | sed 's/^/   /'
echo "== devmemctl nics (as uid $NOBODY)"
as_nobody "$WORK/devmemctl" --runtime_dir="$RUN" nics | sed 's/^/   /'

echo "== unprivileged client: listen on dm-a via devmemd, receive 64 MiB from $NS_B"
as_nobody "$WORK/devmemctl" --runtime_dir="$RUN" listen --nic=dm-a --addr=10.77.9.1 \
  --port=7000 --expect_pattern &
listener=$!
deadline=$((SECONDS + 10))
until ip netns exec "$NS_A" ss -Hltn "sport = :7000" | grep -q LISTEN; do
  ((SECONDS > deadline)) && fail "the client never got its socket"
  sleep 0.05
done
ip netns exec "$NS_A" ss -Hltnp "sport = :7000" 2>/dev/null | sed 's/^/   socket: /'
ip netns exec "$NS_B" "$PEER" send --to=10.77.9.1:7000 --bytes=$((64 << 20)) | sed 's/^/   sender: /'
wait "$listener" || fail "the client reported an error"
echo "== done: the client (uid $NOBODY, no capabilities) received every byte intact"
