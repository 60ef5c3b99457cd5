#!/usr/bin/env bash
# NIC profiles against the real kernel, with ethtool(8) as the independent
# witness, in two namespaces joined by a veth pair this test creates:
#
#  1. kernel backend, --nic=dm-a: veth has no header split, ntuple rules or RSS,
#     so devmemd reports dm-a "not devmem-capable" with the kernel's errno and
#     message, changes nothing (ethtool -l/-k/-g identical before and after, no
#     record written), and keeps serving (a plain Listen still works). A memfd
#     offered for BindRx is rejected as "not a dma-buf" before any netlink.
#  2. simulated backend over the same veth: the profile applies to the
#     simulated NIC, a client binds memfd "device memory", gets a listening
#     socket with a steering rule, receives 8 MiB from namespace B, and after it
#     exits the rule and binding are gone; SIGTERM restores and removes the
#     record. The real veth is still untouched.
set -euo pipefail
source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/integration/netns_lib.sh"
skip_unless_root "nic_profile_veth_test"

DEVMEMD="${TEST_SRCDIR}/${TEST_WORKSPACE}/daemon/devmemd"
CTL="${TEST_SRCDIR}/${TEST_WORKSPACE}/client/devmemctl"
PEER="${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/tools/pattern_peer"
WORK=$(mktemp -d /tmp/devmemd-np.XXXXXX)
RUN=$WORK/run
STATE=$WORK/state
make_veth_pair np 31

in_a() { ip netns exec "$NS_A" "$@"; }
ctl() { in_a "$CTL" --runtime_dir="$RUN" "$@"; }
witness() { in_a ethtool -l dm-a; in_a ethtool -k dm-a; in_a ethtool -g dm-a 2>&1 || true; }

witness >"$WORK/before.txt"

echo "== 1. kernel backend on veth"
start_daemon "$NS_A" "$RUN" --allow_uids=0 --nic=dm-a --state_dir="$STATE" ||
  fail "devmemd did not start"
grep -q "NIC backend: kernel" "$WORK/devmemd.log" || fail "log does not name the kernel backend"
grep -q "nic dm-a: not devmem-capable, missing: " "$WORK/devmemd.log" ||
  fail "dm-a was not reported as not devmem-capable"
grep -q "tcp_data_split (errno 95" "$WORK/devmemd.log" ||
  fail "the rings refusal (EOPNOTSUPP) is not in the report"
grep -q "nothing was changed" "$WORK/devmemd.log" || fail "report does not say nothing changed"

show=$(ctl nic show dm-a --json) || fail "nic show failed"
echo "$show" | grep -q '"state": *"PROFILE_STATE_NOT_CAPABLE"' ||
  fail "nic show: state is not NOT_CAPABLE: $show"
echo "$show" | grep -q '"errno_value": *95' || fail "nic show: no errno 95 in missing: $show"
ctl nic show dm-a | sed 's/^/   /'
[[ ! -e $STATE/nics/dm-a.original.textproto ]] || fail "a record was written for an untouched NIC"

# The daemon keeps serving: a plain listen on dm-a works.
timeout 20 "$CTL" --runtime_dir="$RUN" status >/dev/null || fail "status failed"
set +e
out=$(ctl listen --nic=dm-a --port=7100 --bind_memfd_mb=1 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "listen with a memfd binding on the kernel backend: rc $rc: $out"
echo "$out" | grep -q "not a dma-buf" || fail "memfd not rejected as 'not a dma-buf': $out"
echo "   memfd refused: $(echo "$out" | grep -m1 'not a dma-buf')"

# Restore of a NIC that was never changed is refused, and says why.
set +e
out=$(ctl nic restore dm-a 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "nic restore of an unapplied NIC: rc $rc: $out"
echo "$out" | grep -q "nothing to restore" || fail "nic restore message: $out"

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "devmemd exited with an error"
DAEMON_PID=""
witness >"$WORK/after.txt"
diff -u "$WORK/before.txt" "$WORK/after.txt" || fail "ethtool shows dm-a changed"

echo "== 2. simulated backend over the same veth"
rm -rf "$RUN"
start_daemon "$NS_A" "$RUN" --allow_uids=0 --nic=dm-a --state_dir="$STATE" \
  --nic_backend=simulated || fail "devmemd (simulated) did not start"
grep -q "NIC backend: SIMULATED" "$WORK/devmemd.log" || fail "log does not say SIMULATED"
grep -q "nic dm-a: profile applied" "$WORK/devmemd.log" || fail "profile not applied"
[[ -s $STATE/nics/dm-a.original.textproto ]] || fail "original state was not recorded"
ctl nic show dm-a | sed 's/^/   /'

ctl listen --nic=dm-a --addr=10.77.31.1 --port=7101 --bind_memfd_mb=4 --queues=1 \
  --expect_pattern >"$WORK/listen.out" 2>"$WORK/listen.err" &
listener=$!
deadline=$((SECONDS + 10))
until in_a ss -Hltn "sport = :7101" | grep -q LISTEN; do
  ((SECONDS > deadline)) && fail "the client never got its socket: $(cat "$WORK/listen.err")"
  sleep 0.05
done
during=$(ctl nic show dm-a --json)
echo "$during" | grep -q '"rules": *1' || fail "no steering rule while the client runs: $during"
ip netns exec "$NS_B" "$PEER" send --to=10.77.31.1:7101 --bytes=$((8 << 20)) >/dev/null
wait "$listener" || fail "client failed: $(cat "$WORK/listen.err")"
sed 's/^/   client: /' "$WORK/listen.err"
grep -qi "rule" "$WORK/listen.err" || fail "client did not print its steering rule"
# The session closed: its rule, binding and queue are released.
deadline=$((SECONDS + 10))
until ctl nic show dm-a --json | grep -q '"bindings": *0'; do
  ((SECONDS > deadline)) && fail "lease not released after the client exited"
  sleep 0.05
done
after=$(ctl nic show dm-a --json)
if echo "$after" | grep -q '"rules": *[1-9]'; then fail "rules left: $after"; fi

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "devmemd exited with an error"
DAEMON_PID=""
grep -q "nic dm-a: original state restored" "$WORK/devmemd.log" ||
  fail "shutdown did not restore dm-a"
[[ ! -e $STATE/nics/dm-a.original.textproto ]] || fail "record not removed after restore"
witness >"$WORK/after2.txt"
diff -u "$WORK/before.txt" "$WORK/after2.txt" || fail "the simulated backend changed the real veth"
echo "PASS: nic_profile_veth_test"
