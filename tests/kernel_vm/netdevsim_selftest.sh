#!/bin/bash
# In a kernel_matrix guest with netdevsim loaded: `devmemctl selftest` on a
# netdevsim port must refuse (netdevsim has header split but no ntuple and no
# RSS), name each missing capability with the kernel's errno 95, and leave
# the port exactly as it was (ethtool -g, -l and -k as the witnesses).
#   netdevsim_selftest.sh DEVMEMCTL
set -u
ctl=$1
source "$(dirname "$0")/guest_lib.sh"
nsim_create 41
trap nsim_delete EXIT
before=$(ethtool -g "$nic"; ethtool -l "$nic"; ethtool -k "$nic")
json=$("$ctl" selftest --nic "$nic" --json)
rc=$?
after=$(ethtool -g "$nic"; ethtool -l "$nic"; ethtool -k "$nic")
echo "$json"
[[ $rc -eq 1 ]] || fail "selftest exited $rc, expected 1 (refused)"
[[ $before == "$after" ]] || fail "the port changed: $(diff <(echo "$before") <(echo "$after"))"
python3 - "$json" <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
missing = {m["name"]: m for m in r.get("missing", [])}
problems = []
if r.get("ran") is not False: problems.append("ran is not false")
if r.get("restored") is not True: problems.append("restored is not true")
for cap in ("ntuple", "rss"):
    m = missing.get(cap)
    if m is None: problems.append(f"{cap} not reported missing")
    elif m.get("errno") != 95: problems.append(f"{cap}: errno {m.get('errno')}, expected 95")
if "hds" in missing or "header_split" in missing:
    problems.append("header split reported missing, but netdevsim has it")
if problems:
    print("FAIL: " + "; ".join(problems))
    sys.exit(1)
print("ok: refused with ntuple and rss missing (errno 95), nothing changed")
PY
