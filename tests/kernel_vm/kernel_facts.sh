#!/bin/bash
# In a kernel_matrix guest: what devmemd tells a user about the running
# kernel (`devmemctl status --json`) matches the kernel: its release, and
# the netdev commands of its version (bind-rx 6.12, napi-set 6.13, bind-tx
# 6.16). On 6.12 that is where a user sees that bind-tx is not there.
#   kernel_facts.sh DEVMEMD DEVMEMCTL
set -u
devmemd=$1 ctl=$2
source "$(dirname "$0")/guest_lib.sh"
dir=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
echo "allow_uids: 0" >"$dir/devmemd.textproto"
devmemd_start "$devmemd" "$dir/devmemd.textproto"
json=$("$ctl" --runtime_dir="$dir/run" status --json) || fail "status: $json"
"$ctl" --runtime_dir="$dir/run" status | grep -E "^(kernel|netdev)" || true
python3 - "$json" "$(uname -r)" <<'PY'
import json, sys
st, release = json.loads(sys.argv[1]), sys.argv[2]
major, minor = (int(x) for x in release.split(".")[:2])
at_least = lambda a, b: (major, minor) >= (a, b)
ops = set(st.get("netdevOps", st.get("netdev_ops", [])))
got_release = st.get("kernelRelease", st.get("kernel_release"))
problems = []
if got_release != release:
    problems.append(f"kernel_release {got_release!r}, uname -r {release!r}")
for op, since in (("bind-rx", (6, 12)), ("napi-set", (6, 13)), ("bind-tx", (6, 16))):
    if (op in ops) != at_least(*since):
        problems.append(f"{op} {'listed' if op in ops else 'not listed'} on {release}"
                        f" (it came in {since[0]}.{since[1]})")
if problems:
    print("FAIL: " + "; ".join(problems) + "\n" + sys.argv[1])
    sys.exit(1)
print(f"ok: {release}: netdev ops {sorted(ops)}")
PY
