#!/usr/bin/env bash
# deploy/grafana/devmemd.json against docs/METRICS.md with
# grafana/check_dashboard.py (valid JSON, unique panel ids, gridPos without
# overlaps, ${DS_PROMETHEUS} everywhere, the nic variable, only documented
# metric names, every family on a panel). Then the checker must reject
# dashboards broken on purpose, each for the reason named.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed"; exit 0; }
HERE="${TEST_SRCDIR}/${TEST_WORKSPACE}"
CHECK="$HERE/deploy/grafana/check_dashboard.py"
DASH="$HERE/deploy/grafana/devmemd.json"
METRICS="$HERE/docs/METRICS.md"
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/grafana.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "== the dashboard"
python3 "$CHECK" "$DASH" "$METRICS" || fail "the dashboard does not pass"

# mutate NAME: writes $WORK/NAME.json, the dashboard with one thing broken.
mutate() {
  python3 - "$DASH" "$WORK/$1.json" "$1" <<'EOF'
import json, sys
src, dst, what = sys.argv[1:]
d = json.load(open(src))
panels = [p for p in d["panels"] if p["type"] != "row"]
def exprs(p): return " ".join(t["expr"] for t in p.get("targets", []))
if what == "missing_family":
    d["panels"] = [p for p in d["panels"] if "devmemd_queue_dmabuf_bound" not in exprs(p)]
elif what == "unknown_name":
    p = next(p for p in panels if "devmemd_leases" in exprs(p))
    p["targets"][0]["expr"] = p["targets"][0]["expr"].replace("devmemd_leases", "devmemd_lease")
elif what == "bare_histogram":
    p = next(p for p in panels if "_bucket" in exprs(p))
    p["targets"][0]["expr"] = "rate(devmemd_request_duration_seconds[5m])"
elif what == "duplicate_id":
    panels[3]["id"] = panels[2]["id"]
elif what == "no_gridpos":
    del panels[4]["gridPos"]
elif what == "overlap":
    panels[1]["gridPos"] = dict(panels[0]["gridPos"], x=panels[0]["gridPos"]["x"] + 1)
elif what == "other_datasource":
    panels[5]["datasource"] = {"type": "prometheus", "uid": "prod"}
elif what == "no_nic_variable":
    d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "nic"]
json.dump(d, open(dst, "w"))
EOF
}

echo "== broken dashboards are rejected"
n=0
while IFS='|' read -r name expected; do
  mutate "$name"
  if python3 "$CHECK" "$WORK/$name.json" "$METRICS" >"$WORK/$name.out" 2>&1; then
    fail "$name: the checker accepted it"
  fi
  grep -q -- "$expected" "$WORK/$name.out" ||
    fail "$name: no '$expected' in: $(cat "$WORK/$name.out")"
  echo "$name: $(grep -m1 -- "$expected" "$WORK/$name.out")"
  n=$((n + 1))
done <<'EOF'
missing_family|family devmemd_queue_dmabuf_bound (gauge) is used by no panel
unknown_name|devmemd_lease is not a series of docs/METRICS.md
bare_histogram|devmemd_request_duration_seconds is not a series of docs/METRICS.md
duplicate_id|id also used by
no_gridpos|lacks integer h, w, x, y
overlap|overlap
other_datasource|datasource is not ${DS_PROMETHEUS}
no_nic_variable|no `nic` variable
EOF
head -c 1000 "$DASH" >"$WORK/truncated.json"
if python3 "$CHECK" "$WORK/truncated.json" "$METRICS" >"$WORK/truncated.out"; then
  fail "truncated JSON accepted"
fi
echo "truncated: $(cat "$WORK/truncated.out")"
echo "PASS: dashboard checked; $((n + 1)) broken variants rejected"
