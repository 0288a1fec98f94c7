#!/usr/bin/env python3
"""Static checks of the shipped operations files (Python standard library only; run by .ci/run).

- Every `dripgate_…` metric named in deploy/prometheus/dripgate.rules.yml and in the dashboard's
  PromQL is one dripgate registers (a `"dripgate_…"` name in src/; a histogram's `_bucket`,
  `_sum`, `_count` count as its name). tests/it/deploy_metrics.rs checks the same names against a
  real scrape; this check needs no build.
- Every alert has `summary`, `description` and a `runbook_url` pointing to a heading of
  docs/OPERATIONS.md.
- The dashboard has a `datasource` variable of type prometheus, and every panel and query uses
  it.

With `--dashboard-rules FILE` it also writes the dashboard's panel queries (dashboard variables
replaced by sample values) as a rules file, for `promtool check rules FILE` to parse the PromQL.

Prints nothing and exits 0 when all is well; prints every finding and exits 1 otherwise.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy/prometheus/dripgate.rules.yml"
DASHBOARD = ROOT / "deploy/grafana/dripgate.json"
OPERATIONS = ROOT / "docs/OPERATIONS.md"
RUNBOOK_BASE = "docs/OPERATIONS.md#"

NAME = re.compile(r"(?<![A-Za-z0-9_:])dripgate_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_sum", "_count")


def registered_metrics():
    names = set()
    for path in (ROOT / "src").rglob("*.rs"):
        names.update(re.findall(r'"(dripgate_[a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    return names


def known(name, registered):
    if name in registered:
        return True
    return any(name.endswith(s) and name[: -len(s)] in registered for s in SUFFIXES)


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def rule_alerts(text):
    """(alert name, annotation keys, runbook_url) per alert, read from the rules file's layout:
    `- alert: X` starts an alert, `key: value` lines under `annotations:` belong to it."""
    alerts = []
    current = None
    in_annotations = False
    for line in text.splitlines():
        stripped = line.strip()
        m = re.match(r"-\s+(alert|record):\s*(\S+)", stripped)
        if m:
            current = None
            in_annotations = False
            if m.group(1) == "alert":
                current = {"name": m.group(2), "annotations": {}}
                alerts.append(current)
            continue
        if current is None:
            continue
        if stripped == "annotations:":
            in_annotations = True
            annotations_indent = len(line) - len(line.lstrip())
            continue
        if in_annotations and stripped:
            indent = len(line) - len(line.lstrip())
            if indent <= annotations_indent:
                in_annotations = False
                continue
            m = re.match(r"([a-z_]+):\s*(.*)", stripped)
            if m and indent == annotations_indent + 2:
                current["annotations"][m.group(1)] = m.group(2)
    return alerts


def dashboard_queries(node, into):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                into.append(value)
            else:
                dashboard_queries(value, into)
    elif isinstance(node, list):
        for value in node:
            dashboard_queries(value, into)


# Sample values for the dashboard's variables, so that its PromQL parses.
VARIABLES = {"$__rate_interval": "5m", "$job": ".*", "$target": "80"}


def dashboard_rules(dash):
    """The dashboard's panel queries as recording rules (JSON is YAML)."""
    rules = []
    for panel in dash.get("panels", []):
        for i, target in enumerate(panel.get("targets", [])):
            expr = target.get("expr", "")
            for var, value in VARIABLES.items():
                expr = expr.replace(var, value)
            rules.append({"record": f"dashboard:panel{panel.get('id')}:{i}", "expr": expr})
    return {"groups": [{"name": "dripgate-dashboard-queries", "rules": rules}]}


def main():
    findings = []
    registered = registered_metrics()
    if len(registered) < 20:
        findings.append(f"only {len(registered)} metric names found in src/: is this the repository root?")

    rules = RULES.read_text(encoding="utf-8")
    for name in sorted(set(NAME.findall(rules))):
        if not known(name, registered):
            findings.append(f"{RULES.relative_to(ROOT)}: {name} is not a metric dripgate registers")

    headings = set()
    if OPERATIONS.exists():
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
            m = re.match(r"#{1,6}\s+(.*)", line)
            if m:
                headings.add(github_anchor(m.group(1)))
    else:
        findings.append(f"{OPERATIONS.relative_to(ROOT)} is missing")
    alerts = rule_alerts(rules)
    if len(alerts) < 8:
        findings.append(f"{RULES.relative_to(ROOT)}: only {len(alerts)} alerts found")
    for alert in alerts:
        notes = alert["annotations"]
        for key in ("summary", "description", "runbook_url"):
            if not notes.get(key):
                findings.append(f"alert {alert['name']}: no {key} annotation")
        url = notes.get("runbook_url", "")
        if url and not url.startswith(RUNBOOK_BASE):
            findings.append(f"alert {alert['name']}: runbook_url {url} is not under {RUNBOOK_BASE}")
        elif url and url[len(RUNBOOK_BASE):] not in headings:
            findings.append(
                f"alert {alert['name']}: runbook_url anchor #{url[len(RUNBOOK_BASE):]} "
                f"is no heading of {OPERATIONS.relative_to(ROOT)}"
            )

    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        findings.append("dashboard: no `datasource` variable of type prometheus")
    queries = []
    dashboard_queries(dash, queries)
    if len(queries) < 10:
        findings.append(f"dashboard: only {len(queries)} queries found")
    for query in queries:
        for name in NAME.findall(query):
            if not known(name, registered):
                findings.append(f"dashboard: {name} is not a metric dripgate registers (in: {query})")
    for panel in dash.get("panels", []):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        sources = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
        for source in sources:
            if not isinstance(source, dict) or source.get("uid") != "${datasource}":
                findings.append(f"dashboard panel {title!r}: datasource {source!r} is not ${{datasource}}")
        if not panel.get("targets"):
            findings.append(f"dashboard panel {title!r}: no queries")
        if not panel.get("description"):
            findings.append(f"dashboard panel {title!r}: no description")

    if "--dashboard-rules" in sys.argv[1:]:
        out = Path(sys.argv[sys.argv.index("--dashboard-rules") + 1])
        out.write_text(json.dumps(dashboard_rules(dash), indent=1), encoding="utf-8")

    for finding in findings:
        print(f"deploy/check.py: {finding}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
