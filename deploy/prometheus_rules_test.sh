#!/usr/bin/env bash
# deploy/prometheus with promtool (Debian's prometheus package):
#  - `promtool check rules` on devmemd.rules.yml;
#  - every devmemd_* name in it is a series of docs/METRICS.md (a histogram as
#    _bucket, _sum or _count);
#  - every alert has `for:`, a severity label, a summary and a description, and
#    a firing case in devmemd.rules.test.yml;
#  - `promtool test rules devmemd.rules.test.yml` passes (each alert fires on
#    its problem, not before its `for:`, and none on a healthy host);
#  - the same unit tests FAIL on rules broken on purpose, so they can fail;
#  - `promtool check config` on prometheus.example.yml, with rule_files pointed
#    at this checkout's rules.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v promtool >/dev/null || { echo "SKIPPED: promtool is not installed (Debian package prometheus)"; exit 0; }
HERE="${TEST_SRCDIR}/${TEST_WORKSPACE}"
PROM="$HERE/deploy/prometheus"
RULES="$PROM/devmemd.rules.yml"
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/prom.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "== promtool check rules"
promtool check rules "$RULES" || fail "promtool check rules"

echo "== metric names against docs/METRICS.md"
# Series names: the table rows of METRICS.md; a histogram is its three series.
awk -F'|' '/^\| `devmemd_/ {
    name = $2; type = $3; gsub(/[ `]/, "", name); gsub(/ /, "", type)
    if (type == "histogram") { print name "_bucket"; print name "_sum"; print name "_count" }
    else print name
  }' "$HERE/docs/METRICS.md" | sort -u >"$WORK/documented"
[[ $(wc -l <"$WORK/documented") -ge 30 ]] || fail "read too few names from METRICS.md: $(cat "$WORK/documented")"
grep -v '^[[:space:]]*#' "$RULES" | grep -oE '\bdevmemd_[a-z0-9_]+' | sort -u >"$WORK/used"
unknown=$(comm -23 "$WORK/used" "$WORK/documented")
[[ -z $unknown ]] || fail "names not in docs/METRICS.md: $unknown"
echo "$(wc -l <"$WORK/used") names, all documented"

echo "== every alert: for, severity, summary, description, a firing test"
alerts=$(sed -n 's/^ *- alert: \([A-Za-z]*\)$/\1/p' "$RULES")
[[ $(wc -w <<<"$alerts") -eq 7 ]] || fail "expected 7 alerts, found: $alerts"
for a in $alerts; do
  block=$(awk -v a="$a" '/^ *- alert: / { on = ($3 == a) } on' "$RULES")
  for key in 'for: [0-9]+m' 'severity: (critical|warning)' 'summary: ' 'description: '; do
    grep -qE "^ *$key" <<<"$block" || fail "$a has no '$key'"
  done
  # A firing case: "alertname: X" on its own line, then exp_alerts with labels.
  awk -v a="$a" '$0 ~ "^ *alertname: " a "$" { n = NR } n && NR <= n + 2 && /exp_labels:/ { ok = 1 }
    END { exit !ok }' "$PROM/devmemd.rules.test.yml" || fail "$a has no firing case in devmemd.rules.test.yml"
  echo "$a: ok"
done

echo "== promtool test rules"
promtool test rules "$PROM/devmemd.rules.test.yml" || fail "promtool test rules"

echo "== the unit tests catch broken rules"
# Each edit breaks one alert; the unit tests must then fail.
cp "$PROM/devmemd.rules.test.yml" "$WORK/"
n=0
while IFS='|' read -r from to; do
  sed "s/$from/$to/" "$RULES" >"$WORK/devmemd.rules.yml"
  cmp -s "$RULES" "$WORK/devmemd.rules.yml" && fail "mutation '$from' matched nothing"
  if promtool test rules "$WORK/devmemd.rules.test.yml" >"$WORK/out" 2>&1; then
    fail "promtool test rules passed with '$from' changed to '$to'"
  fi
  n=$((n + 1))
done <<'EOF'
up{job="devmemd"} == 0|up{job="devmemd"} == 2
devmemd_nic_degraded == 1|devmemd_nic_degraded == 2
state="failed"} == 1|state="failed"} == 2
devmemd_queues{state="free"}) == 0|devmemd_queues{state="free"}) == 1
cause="kernel"|cause="quota"
devmemd_queue_rx_alloc_fail_total|devmemd_nic_rx_alloc_fail_total
devmemd_journal_healthy == 0|devmemd_journal_healthy == 1
for: 15m|for: 1h
EOF
echo "$n broken variants, each caught"

echo "== promtool check config prometheus.example.yml"
sed "s#/usr/share/devmemd/prometheus/devmemd.rules.yml#$RULES#" \
  "$PROM/prometheus.example.yml" >"$WORK/prometheus.yml"
grep -q "$RULES" "$WORK/prometheus.yml" || fail "prometheus.example.yml does not load /usr/share/devmemd/prometheus/devmemd.rules.yml"
grep -q '127.0.0.1:9464' "$WORK/prometheus.yml" || fail "prometheus.example.yml does not scrape 127.0.0.1:9464"
promtool check config "$WORK/prometheus.yml" || fail "promtool check config"
echo "PASS: rules check, $(grep -c '^  - name:' "$PROM/devmemd.rules.test.yml") unit-test groups pass, $n broken variants caught, example config valid"
