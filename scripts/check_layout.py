#!/usr/bin/env python3
"""Checks that daemon/ library code only includes downwards (README, Layout):
kernel/ and proto/ at the bottom, then daemon/base, daemon/state, daemon/nic (with
nic/simulated), daemon/session, daemon/ops, and daemon/ itself at the top.
Tests and daemon/**/testing/ may include anything. Prints each upward include
as FILE: includes HEADER (FOLDER is above FOLDER) and exits 1 if there is
one; run from the repository root."""
import glob
import os
import re
import sys

RANK = {
    "daemon/base": 0,
    "daemon/state": 1,
    "daemon/nic": 2,
    "daemon/nic/simulated": 2,
    "daemon/session": 3,
    "daemon/ops": 4,
    "daemon": 5,
}
# Same rank, but one way only: the simulated backend may use nic/, not back.
FORBIDDEN = {("daemon/nic", "daemon/nic/simulated")}

bad = []
for path in sorted(glob.glob("daemon/**/*.*", recursive=True)):
    if not path.endswith((".h", ".cc")) or path.endswith("_test.cc"):
        continue
    if "/testing/" in path:
        continue
    here = os.path.dirname(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for header in re.findall(r'#include "(daemon/[^"]+)"', text):
        there = os.path.dirname(header)
        if there == here or there.endswith("/testing"):
            continue
        if RANK.get(there, 0) > RANK.get(here, 0) or (here, there) in FORBIDDEN:
            bad.append(f"{path}: includes {header} ({there} is above {here})")
for line in bad:
    print(line)
if bad:
    sys.exit(1)
print("layout: daemon/ includes point down only")
