#!/usr/bin/env python3
"""Checks a Grafana dashboard against docs/METRICS.md.

usage: check_dashboard.py DASHBOARD.json METRICS.md

- the file is JSON with schemaVersion 36 to 39, a datasource variable
  DS_PROMETHEUS (Prometheus) and a `nic` variable from label_values(devmemd_queues..);
- every panel (rows and panels inside rows included) has a unique integer id and
  a gridPos {h, w, x, y} inside the 24-column grid, and no two panels overlap;
- every non-row panel and each of its targets use the ${DS_PROMETHEUS}
  datasource, and each target has a PromQL expression;
- every metric name in those expressions (and in the template variables) is a
  series of docs/METRICS.md: a family's own name, or for a histogram its
  _bucket, _sum and _count series;
- every family of docs/METRICS.md is used by at least one panel.

Prints each problem and exits 1 if there is any; prints a summary and exits 0
otherwise.
"""

import json
import re
import sys

DATASOURCE_UID = "${DS_PROMETHEUS}"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# PromQL words that are not metric names where they stand alone.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}


def read_families(metrics_md):
    """{family: type} from the table rows "| `devmemd_x` | type | ..."."""
    families = {}
    for line in open(metrics_md, encoding="utf-8"):
        m = re.match(r"^\|\s*`(devmemd_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|", line)
        if m:
            families[m.group(1)] = m.group(2)
    return families


def series_of(families):
    """{series name: family}: a histogram family is its three series."""
    out = {}
    for family, kind in families.items():
        if kind == "histogram":
            for suffix in HISTOGRAM_SUFFIXES:
                out[family + suffix] = family
        else:
            out[family] = family
    return out


def metric_names(expr):
    """Metric names in a PromQL expression (Grafana variables allowed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    # Label lists of aggregations and vector matching.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = []
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\(?)", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue  # a function or aggregation, or an operator
        names.append(word)
    return names


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def check(dashboard, families):
    problems = []
    allowed = series_of(families)
    used = {}  # family -> panel titles

    def check_expr(where, expr):
        for name in metric_names(expr):
            if name not in allowed:
                problems.append(f"{where}: {name} is not a series of docs/METRICS.md "
                                f"(in: {expr})")
            else:
                used.setdefault(allowed[name], []).append(where)

    schema = dashboard.get("schemaVersion")
    if not isinstance(schema, int) or not 36 <= schema <= 39:
        problems.append(f"schemaVersion is {schema!r}, expected 36 to 39")

    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no datasource variable DS_PROMETHEUS of type prometheus")
    for name, var in variables.items():
        if var.get("type") != "query":
            continue
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
        if not m:
            problems.append(f"variable {name}: not label_values(metric, label): {query!r}")
            continue
        check_expr(f"variable {name}", m.group(1))
        if var.get("datasource", {}).get("uid") != DATASOURCE_UID:
            problems.append(f"variable {name}: datasource is not {DATASOURCE_UID}")
    nic = variables.get("nic")
    nic_query = json.dumps(nic.get("query")) if nic else ""
    if not re.search(r"label_values\(devmemd_queues\b.*, *nic\)", nic_query):
        problems.append("no `nic` variable from label_values(devmemd_queues, nic)")

    ids = {}
    boxes = []
    for panel in walk_panels(dashboard.get("panels", [])):
        title = panel.get("title", "?")
        pid = panel.get("id")
        where = f"panel {pid} {title!r}"
        if not isinstance(pid, int) or isinstance(pid, bool):
            problems.append(f"panel {title!r}: id {pid!r} is not an integer")
        elif pid in ids:
            problems.append(f"{where}: id also used by {ids[pid]!r}")
        else:
            ids[pid] = title
        pos = panel.get("gridPos")
        if not isinstance(pos, dict) or not all(
                isinstance(pos.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"{where}: gridPos {pos!r} lacks integer h, w, x, y")
        elif pos["h"] < 1 or pos["w"] < 1 or pos["x"] < 0 or pos["y"] < 0 or \
                pos["x"] + pos["w"] > 24:
            problems.append(f"{where}: gridPos {pos} is outside the 24-column grid")
        else:
            boxes.append((where, pos))
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != DATASOURCE_UID:
            problems.append(f"{where}: datasource is not {DATASOURCE_UID}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        for target in targets:
            expr = target.get("expr", "")
            if not expr.strip():
                problems.append(f"{where}: target {target.get('refId')} has no expr")
            if target.get("datasource", {}).get("uid") != DATASOURCE_UID:
                problems.append(f"{where}: target {target.get('refId')} datasource is not "
                                f"{DATASOURCE_UID}")
            check_expr(where, expr)

    for i, (a, pa) in enumerate(boxes):
        for b, pb in boxes[i + 1:]:
            if (pa["x"] < pb["x"] + pb["w"] and pb["x"] < pa["x"] + pa["w"] and
                    pa["y"] < pb["y"] + pb["h"] and pb["y"] < pa["y"] + pa["h"]):
                problems.append(f"{a} and {b} overlap: {pa} {pb}")

    for family in sorted(families):
        panels = [w for w in used.get(family, []) if w.startswith("panel ")]
        if not panels:
            problems.append(f"family {family} ({families[family]}) is used by no panel")
    return problems, ids, used


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        dashboard = json.load(open(argv[1], encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"FAIL: {argv[1]}: {e}")
        return 1
    families = read_families(argv[2])
    if len(families) < 30:
        print(f"FAIL: read only {len(families)} families from {argv[2]}")
        return 1
    problems, ids, used = check(dashboard, families)
    for p in problems:
        print(f"FAIL: {p}")
    if problems:
        return 1
    print(f"ok: {len(ids)} panels, {len(families)} families of docs/METRICS.md, each on a panel")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
