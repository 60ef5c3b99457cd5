#!/usr/bin/env bash
# Reservations end to end on the real kernel, with real processes:
#  1. devmemd (simulated devmem NIC over a veth, pool of 2 queues) in
#     namespace A; an admin reserves 1 queue for a job with devmemctl;
#  2. a workload running as uid nobody without the token cannot take the
#     reserved queue; with DEVMEM_RESERVATION it binds onto it, gets a steered
#     listening socket and receives 8 MiB from namespace B, every byte checked;
#  3. devmemd is killed with -9 and started again: the reservation is still
#     there with the same deadline, and its token still works;
#  4. renew moves the deadline; release by job is idempotent; a short TTL
#     expires across processes and the queue goes back to the pool;
#  5. nobody cannot reserve (admin only); a bad job id is refused and leaves
#     nothing; with require_reservation a binding without a token is refused.
set -euo pipefail
source tests/integration/netns_lib.sh
skip_unless_root "reservation_veth_test"

DEVMEMD=$PWD/daemon/devmemd
WORK=$(mktemp -d /tmp/devmemd-reserve.XXXXXX)
chmod 0755 "$WORK"
install -m 0755 client/devmemctl "$WORK/devmemctl"
PEER=$PWD/tests/tools/pattern_peer
RUN=$WORK/run
NOBODY=$(id -u nobody)
NOGROUP=$(getent group nogroup | cut -d: -f3)

make_veth_pair res 35
in_a() { ip netns exec "$NS_A" "$@"; }
ctl() { in_a "$WORK/devmemctl" --runtime_dir="$RUN" "$@"; }
as_nobody() {
  in_a setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups -- \
    env "$@"
}
write_config() {
  cat >"$WORK/devmemd.textproto" <<CONF
allow_uids: [0, $NOBODY]
socket_group: "nogroup"
nic_backend: "simulated"
nic_profiles { nic: "dm-a" pool_queues: 2 }
$1
CONF
}
start() {
  start_daemon "$NS_A" "$RUN" --config="$WORK/devmemd.textproto" \
    --state_dir="$WORK/state" --dbus= || fail "devmemd did not start"
}
# receive PORT TOKEN: a listener as nobody (with TOKEN as DEVMEM_RESERVATION
# unless empty) that checks 8 MiB of the pattern sent from namespace B.
receive() {
  local port=$1 token=$2 out=$WORK/listen$1
  as_nobody ${token:+DEVMEM_RESERVATION=$token} "$WORK/devmemctl" \
    --runtime_dir="$RUN" listen --nic=dm-a --addr=10.77.35.1 --port="$port" \
    --bind_memfd_mb=4 --expect_pattern >"$out.out" 2>"$out.err" &
  local listener=$!
  local deadline=$((SECONDS + 10))
  until in_a ss -Hltn "sport = :$port" | grep -q LISTEN; do
    ((SECONDS > deadline)) && fail "no listener on $port: $(cat "$out.err")"
    sleep 0.05
  done
  ctl reservations >"$out.during"
  ip netns exec "$NS_B" "$PEER" send --to="10.77.35.1:$port" \
    --bytes=$((8 << 20)) >/dev/null || fail "sender failed"
  wait "$listener" || fail "listener failed: $(cat "$out.err")"
  grep -q "8388608" "$out.err" "$out.out" || fail "client did not get 8388608 bytes"
}

echo "== 1. reserve"
write_config ""
start
reserve_out=$(ctl reserve --job=train-7 --nic=dm-a --queues=1 --ttl=1h \
  --request_id=r1) || fail "reserve failed: $reserve_out"
echo "$reserve_out"
token=$(tail -1 <<<"$reserve_out" | sed -n 's/^DEVMEM_RESERVATION=//p')
[[ $token == dmr1-* ]] || fail "no token in: $reserve_out"
# A retry gets the same reservation and token.
again=$(ctl reserve --job=train-7 --nic=dm-a --queues=1 --ttl=1h --request_id=r1)
[[ $(tail -1 <<<"$again") == "DEVMEM_RESERVATION=$token" ]] || fail "retry: $again"
grep -q "(existing)" <<<"$again" || fail "retry not marked existing: $again"
# The journal keeps the token's hash only.
if grep -qa "$token" "$WORK/state/journal"; then fail "the token is in the journal"; fi
listing=$(ctl reservations)
echo "$listing"
grep -q "train-7" <<<"$listing" || fail "reservations does not list train-7"
if grep -q "$token" <<<"$listing"; then fail "reservations shows the token"; fi

echo "== 2. only the token binds the reserved queue"
set +e
out=$(as_nobody "$WORK/devmemctl" --runtime_dir="$RUN" listen --nic=dm-a \
  --addr=10.77.35.1 --port=7301 --bind_memfd_mb=4 --queues=2 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "a binding without the token took the reserved queue"
grep -q "RESOURCE_EXHAUSTED" <<<"$out" || fail "no RESOURCE_EXHAUSTED: $out"
receive 7302 "$token"
sed 's/^/   client: /' "$WORK/listen7302.err"
grep -q "RX queues" "$WORK/listen7302.err" || fail "client did not report its binding"
grep -Eq "train-7 .* active +1 " "$WORK/listen7302.during" ||
  fail "reservation did not show the live binding: $(cat "$WORK/listen7302.during")"

echo "== 3. kill -9 and restart: the reservation and its token survive"
before=$(ctl reservations --json)
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
rm -f "$RUN/grpc.sock" "$RUN/session.sock"
start
grep -q "1 reservation(s) kept from the journal" "$WORK/devmemd.log" ||
  fail "recovery did not keep the reservation"
after=$(ctl reservations --json)
exp() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["reservations"][0]["expires_unix_ms"])' "$1"; }
[[ $(exp "$before") == $(exp "$after") ]] || fail "deadline changed: $before vs $after"
receive 7303 "$token"

echo "== 4. renew; release is idempotent; a short TTL expires"
id=$(ctl reservations --json | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["reservations"][0]["id"])')
exp_before=$(exp "$(ctl reservations --json)")
sleep 1
ctl renew "$id" --ttl=2h | grep -q "reservation $id" || fail "renew failed"
exp_after=$(exp "$(ctl reservations --json)")
((exp_after > exp_before + 3600000)) || fail "renew did not move the deadline: $exp_before -> $exp_after"
rel=$(ctl release --job=train-7)
grep -q "released 1 reservation" <<<"$rel" || fail "release: $rel"
rel=$(ctl release --job=train-7)
grep -q "released 0 reservation" <<<"$rel" || fail "second release: $rel"
ctl reserve --job=short --nic=dm-a --queues=2 --ttl=2s >/dev/null || fail "reserve 2s"
deadline=$((SECONDS + 15))
until ctl reservations --job=short | grep -q expired; do
  ((SECONDS > deadline)) && fail "the 2 s reservation never expired: $(ctl reservations)"
  sleep 0.2
done
ctl nic show dm-a --json | python3 -c \
    'import json,sys; n=json.load(sys.stdin)["nics"][0]; sys.exit(0 if len(n.get("free_queues", n.get("freeQueues", []))) == 2 else 1)' ||
  fail "the expired reservation's queues did not come back: $(ctl nic show dm-a --json)"

echo "== 5. admin only, bad input, require_reservation"
set +e
out=$(as_nobody "$WORK/devmemctl" --runtime_dir="$RUN" reserve --job=x --nic=dm-a 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "PERMISSION_DENIED" <<<"$out" || fail "nobody reserved: rc $rc: $out"
set +e
out=$(ctl reserve --job="bad job" --nic=dm-a 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "without spaces" <<<"$out" || fail "bad job id: rc $rc: $out"
ctl reservations | grep -q "bad job" && fail "a refused reservation was kept"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "devmemd exited with an error"
DAEMON_PID=""
write_config "require_reservation: true"
start
set +e
out=$(as_nobody "$WORK/devmemctl" --runtime_dir="$RUN" listen --nic=dm-a \
  --addr=10.77.35.1 --port=7304 --bind_memfd_mb=4 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] && grep -q "FAILED_PRECONDITION" <<<"$out" &&
  grep -q "requires a reservation" <<<"$out" || fail "require_reservation: rc $rc: $out"
token=$(ctl reserve --job=train-8 --nic=dm-a | tail -1 | sed 's/^DEVMEM_RESERVATION=//')
receive 7305 "$token"

echo "PASS: reservation_veth_test"
