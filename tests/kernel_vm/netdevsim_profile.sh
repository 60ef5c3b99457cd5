#!/bin/bash
# In a kernel_matrix guest with netdevsim loaded: devmemd applies a
# header_split_only profile to a real driver through its own netlink code
# (combined channels 4 -> 2, tcp-data-split off -> on, hds-thresh 256 -> 0),
# reports the NIC PARTIAL with ntuple and RSS missing (errno 95), refuses a
# reservation on it, and on SIGTERM puts every setting back exactly. Before
# 6.14 (no header split in netdevsim, no hds-thresh in the kernel) the
# kernel's refusal fails the profile and the channels are rolled back.
# Witnesses: ethtool -l/-g and ethtool_rings.py (an independent netlink
# reader).
#   netdevsim_profile.sh DEVMEMD DEVMEMCTL
set -u
devmemd=$1 ctl=$2
here=$(cd "$(dirname "$0")" && pwd)
rings="python3 $here/ethtool_rings.py"
source "$here/guest_lib.sh"
nsim_create 43
dir=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  nsim_delete
  rm -rf "$dir"
}
trap cleanup EXIT

kernel=$(uname -r)
IFS=. read -r major minor _ <<<"$kernel"
if ((major > 6 || (major == 6 && minor >= 14))); then
  # A starting point the profile must change, set through the witness.
  $rings set "$nic" tcp_data_split=1 hds_thresh=256 || fail "cannot prepare $nic"
  expect_before="combined=4 split=off tcp_data_split=1 hds_thresh=256"
  expect_applied="combined=2 split=on tcp_data_split=2 hds_thresh=0"
else
  # Before 6.14 netdevsim has no header split and the kernel no hds-thresh:
  # RINGS_GET has neither, so devmemd must send no hds-thresh, and the
  # kernel's own refusal of tcp-data-split must fail the profile and roll
  # the channel change back.
  expect_before="combined=4 split=n/a tcp_data_split=0 hds_thresh=-"
  expect_applied=""
fi
witness() {
  echo "combined=$(ethtool -l "$nic" | awk '/^Combined:/ {v=$2} END {print v}')" \
    "split=$(ethtool -g "$nic" | awk -F':[ \t]*' '/^TCP data split/ {print $2}')" \
    "$($rings get "$nic")"
}
before=$(witness)
echo "before:  $before"
[[ $before == "$expect_before" ]] || fail "unexpected starting point: $before"

cat >"$dir/devmemd.textproto" <<CONF
nic_profiles { nic: "$nic" header_split_only: true combined_channels: 2 }
allow_uids: 0
CONF
devmemd_start "$devmemd" "$dir/devmemd.textproto"
cat "$dir/devmemd.log"

applied=$(witness)
echo "applied: $applied"
if [[ -z $expect_applied ]]; then
  grep -q "applying the profile failed at enable header split" "$dir/devmemd.log" ||
    fail "devmemd did not report the failed header split step"
  grep -q "setting TCP data split is not supported" "$dir/devmemd.log" ||
    fail "the kernel's text is not in devmemd's report (an hds-thresh sent to a pre-6.14 kernel would be refused differently)"
  [[ $applied == "$before" ]] || fail "not rolled back: $applied, was $before"
  state=$("$ctl" --runtime_dir="$dir/run" nic show "$nic" --json)
  [[ $state == *PROFILE_STATE_FAILED* ]] || fail "state is not FAILED: $state"
  kill -TERM "$pid"
  wait "$pid"
  pid=""
  after=$(witness)
  [[ $after == "$before" ]] || fail "changed after devmemd stopped: $after"
  echo "ok: $kernel: refused by the kernel's own text, rolled back exactly"
  exit 0
fi
[[ $applied == "$expect_applied" ]] ||
  fail "the profile's settings are not on $nic: $applied"

json=$("$ctl" --runtime_dir="$dir/run" nic show "$nic" --json) ||
  fail "devmemctl nic show failed: $json"
python3 - "$json" <<'PY' || exit 1
import json, sys
doc = json.loads(sys.argv[1])
st = doc["nics"][0] if "nics" in doc else doc
missing = {m["name"]: m for m in st.get("missing", [])}
problems = []
if st.get("state") != "PROFILE_STATE_PARTIAL":
    problems.append(f"state {st.get('state')}, expected PROFILE_STATE_PARTIAL")
for cap in ("ntuple", "rss"):
    if cap not in missing:
        problems.append(f"{cap} not reported missing")
if st.get("poolQueues") or st.get("pool_queues"):
    problems.append("a PARTIAL NIC has a pool")
if problems:
    print("FAIL: " + "; ".join(problems) + "\n" + sys.argv[1])
    sys.exit(1)
print("state: PARTIAL, missing " + ", ".join(sorted(missing)))
PY

# No pool on a PARTIAL NIC: a reservation of its queues is refused, saying
# why.
reserve=$("$ctl" --runtime_dir="$dir/run" reserve --job=j1 --nic="$nic" 2>&1)
[[ $? -ne 0 && $reserve == *"partial"* ]] ||
  fail "a reservation on the PARTIAL NIC was not refused as such: $reserve"
echo "reserve refused: $reserve"

kill -TERM "$pid"
wait "$pid"
pid=""
tail -3 "$dir/devmemd.log"
after=$(witness)
echo "after:   $after"
[[ $after == "$before" ]] || fail "not restored exactly: $after, was $before"
echo "ok: applied for real, reported PARTIAL, restored exactly"
