#!/usr/bin/env bash
# The devmemd and devmemctl binaries as an operator runs them:
#  - a bad config makes devmemd refuse to start, naming file, line and reason;
#  - --help works for both;
#  - SIGTERM shuts down cleanly and removes the sockets;
#  - on a veth, `devmemctl nics` reports channels and features that match
#    `ethtool -l/-k` (independent witness) and ring parameters as unsupported
#    (EOPNOTSUPP), and names what the NIC lacks for devmem.
set -euo pipefail
source tests/integration/netns_lib.sh

DEVMEMD=$PWD/daemon/devmemd
CTL=$PWD/client/devmemctl
WORK=$(mktemp -d /tmp/devmemd-cli.XXXXXX)
trap cleanup EXIT INT TERM

# --help
help=$("$DEVMEMD" --help 2>&1) || true
grep -q -- "--runtime_dir" <<<"$help" || fail "devmemd --help lacks --runtime_dir: $help"
help=$("$CTL" --help 2>&1) || true
grep -q "listen" <<<"$help" || fail "devmemctl --help lacks listen: $help"

# Bad config: unknown field on line 3.
printf 'allow_uids: 0\n# comment\nallow_uid: 5\n' >"$WORK/bad.textproto"
if out=$("$DEVMEMD" --config="$WORK/bad.textproto" --runtime_dir="$WORK/r1" 2>&1); then
  fail "devmemd started with a bad config"
fi
echo "$out"
grep -q "$WORK/bad.textproto:3:" <<<"$out" || fail "error does not name file:line: $out"
grep -q "allow_uid" <<<"$out" || fail "error does not name the field: $out"
[[ ! -e $WORK/r1/grpc.sock ]] || fail "sockets created despite the bad config"

# Out-of-range value.
printf 'ticket_ttl_ms: 1\n' >"$WORK/range.textproto"
if out=$("$DEVMEMD" --config="$WORK/range.textproto" --runtime_dir="$WORK/r1" 2>&1); then
  fail "devmemd started with ticket_ttl_ms: 1"
fi
grep -q "ticket_ttl_ms" <<<"$out" || fail "range error does not name the field: $out"

# Missing config file.
if out=$("$DEVMEMD" --config="$WORK/none.textproto" 2>&1); then
  fail "devmemd started without its config file"
fi
grep -q "none.textproto" <<<"$out" || fail "missing-file error does not name the path: $out"

# Good config, SIGTERM, sockets removed.
printf 'allow_uids: %s\nticket_ttl_ms: 2000\n' "$(id -u)" >"$WORK/good.textproto"
"$DEVMEMD" --config="$WORK/good.textproto" --runtime_dir="$WORK/r2" 2>"$WORK/devmemd.log" &
DAEMON_PID=$!
wait_for_socket "$WORK/r2/session.sock"
wait_for_socket "$WORK/r2/grpc.sock"
[[ $(stat -c %a "$WORK/r2/grpc.sock") == 660 ]] || fail "grpc.sock is not mode 0660"
"$CTL" --runtime_dir="$WORK/r2" status || fail "status failed"
"$CTL" --runtime_dir="$WORK/r2" status --json | grep -q '"version"' || fail "status --json"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "devmemd exited non-zero on SIGTERM"
DAEMON_PID=""
[[ ! -e $WORK/r2/grpc.sock && ! -e $WORK/r2/session.sock ]] || fail "sockets left after SIGTERM"
grep -q "shutting down" "$WORK/devmemd.log" || fail "no shutdown message"

# Batches (devmemctl listen/connect --count): a simulated devmem NIC over lo,
# 200 steered listeners (of its 256 rule slots) in one go; ss(8) is the
# witness that the process holds them, and the daemon that it holds their
# rules.
"$DEVMEMD" --runtime_dir="$WORK/r4" --state_dir="$WORK/s4" --dbus= \
  --nic_backend=simulated --nic=lo --allow_uids="$(id -u)" 2>"$WORK/devmemd4.log" &
DAEMON_PID=$!
wait_for_socket "$WORK/r4/session.sock"
wait_for_socket "$WORK/r4/grpc.sock"
"$CTL" --runtime_dir="$WORK/r4" listen --nic=lo --addr=127.0.0.1 --count=200 \
  --bind_memfd_mb=1 --hold=3s --json >"$WORK/batch.json" 2>"$WORK/batch.err" &
BATCH_PID=$!
for _ in $(seq 100); do
  grep -q "sockets made" "$WORK/batch.err" 2>/dev/null && break
  sleep 0.1
done
grep -q "200 of 200 sockets made" "$WORK/batch.err" || fail "listen --count: $(cat "$WORK/batch.err")"
held=$(ss -Hltnp | grep -c "pid=$BATCH_PID,") || true
[[ $held -eq 200 ]] || fail "ss shows $held listeners of devmemctl, not 200"
"$CTL" --runtime_dir="$WORK/r4" status | grep -qx "rules: 200" || fail "devmemd does not hold 200 rules"
wait "$BATCH_PID" || fail "listen --count exited non-zero"
python3 - "$WORK/batch.json" <<'PY'
import json, sys
# The binding's line comes first; the batch is the last line.
doc = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert doc["opened"] == 200 and doc["failed"] == 0, doc
ports = {s["socket"]["local"]["port"] for s in doc["sockets"]}
locs = {s["socket"]["rule"]["location"] for s in doc["sockets"]}
assert len(ports) == 200 and len(locs) == 200, (len(ports), len(locs))
PY
for _ in $(seq 50); do
  "$CTL" --runtime_dir="$WORK/r4" status | grep -qx "rules: 0" && break
  sleep 0.1
done
"$CTL" --runtime_dir="$WORK/r4" status | grep -qx "rules: 0" || fail "rules left after the batch closed"
# Connect batches: one refused target fails every item, named.
if out=$("$CTL" --runtime_dir="$WORK/r4" connect --nic=lo --remote=127.0.0.1:1 --count=3 2>&1); then
  fail "connect --count to a closed port succeeded: $out"
fi
grep -q "0 of 3 sockets made" <<<"$out" || fail "connect --count summary: $out"
grep -q "Connection refused" <<<"$out" || fail "connect --count does not name the refusal: $out"
if out=$("$CTL" --runtime_dir="$WORK/r4" listen --nic=lo --count=2 --port=80 2>&1); then
  fail "listen --count with a fixed port succeeded"
fi
grep -q "needs --port 0" <<<"$out" || fail "usage error for --count with --port: $out"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "devmemd (simulated) exited non-zero on SIGTERM"
DAEMON_PID=""

if [[ $(id -u) -ne 0 ]] || ! ip netns add "devmemd-probe-$$" 2>/dev/null; then
  echo "SKIPPED (part): veth inventory checks need root and network namespaces"
  echo "PASS: daemon_cli_test (without the veth part)"
  exit 0
fi
ip netns del "devmemd-probe-$$"

make_veth_pair cli 4
start_daemon "$NS_A" "$WORK/r3" --allow_uids=0 || fail "devmemd did not start"
ip netns exec "$NS_A" "$CTL" --runtime_dir="$WORK/r3" nics | tee "$WORK/nics.txt"
ip netns exec "$NS_A" "$CTL" --runtime_dir="$WORK/r3" nics --json >"$WORK/nics.json"

# Witness: ethtool's view of the same veth.
eth_l=$(ip netns exec "$NS_A" ethtool -l dm-a)
eth_k=$(ip netns exec "$NS_A" ethtool -k dm-a)
if ip netns exec "$NS_A" ethtool -g dm-a >/dev/null 2>&1; then
  fail "ethtool -g unexpectedly works on veth; this test's premise changed"
fi
python3 - "$WORK/nics.json" "$eth_l" "$eth_k" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
eth_l, eth_k = sys.argv[2], sys.argv[3]
nics = {n["name"]: n for n in doc.get("nics", doc.get("inventory", {}).get("nics", []))}
assert "dm-a" in nics, f"dm-a missing from inventory: {list(nics)}"
n = nics["dm-a"]
def witness(section, key):
    part = eth_l.split(section)[1]
    m = re.search(rf"^{key}:\s+(\d+)", part, re.M)
    return int(m.group(1)) if m else None
ch = n.get("channels", {})
for key, field in [("RX", "rx"), ("TX", "tx"), ("Combined", "combined")]:
    want_max = witness("Pre-set maximums", key)
    want_cur = witness("Current hardware settings", key)
    got_max = ch.get(f"{field}Max", ch.get(f"{field}_max"))
    got_cur = ch.get(f"{field}Count", ch.get(f"{field}_count"))
    assert got_max == want_max, f"{field} max {got_max} != ethtool {want_max}"
    assert (got_cur or 0) == (want_cur or 0), f"{field} count {got_cur} != ethtool {want_cur}"
nt = re.search(r"^ntuple-filters:\s+(on|off)(\s+\[fixed\])?", eth_k, re.M)
feat = n.get("features", {})
assert bool(feat.get("ntupleActive", feat.get("ntuple_active", False))) == (nt.group(1) == "on")
assert bool(feat.get("ntupleHw", feat.get("ntuple_hw", False))) == (nt.group(2) is None)
caps = {c["name"]: c for c in n.get("capabilities", [])}
rings = caps["rings"]
assert rings["support"] == "SUPPORT_UNSUPPORTED", rings
assert rings.get("errnoValue", rings.get("errno_value")) == 95, rings
assert caps["channels"]["support"] == "SUPPORT_SUPPORTED", caps["channels"]
assert not n.get("devmemCapable", n.get("devmem_capable", False))
missing = " ".join(n.get("devmemMissing", n.get("devmem_missing", [])))
assert "rings" in missing and "ntuple" in missing, missing
print("inventory matches ethtool for dm-a:", ch, feat)
PY
grep -q "dm-a" "$WORK/nics.txt" || fail "human output lacks dm-a"

# Unknown NIC in inventory: NOT_FOUND naming what exists.
if out=$(ip netns exec "$NS_A" "$CTL" --runtime_dir="$WORK/r3" nics eth99 2>&1); then
  fail "nics eth99 succeeded: $out"
fi
echo "$out"
grep -q "dm-a" <<<"$out" || fail "NOT_FOUND message does not list dm-a: $out"
echo "PASS: daemon_cli_test"
