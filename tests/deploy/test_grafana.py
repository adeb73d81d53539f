"""deploy/grafana/wheelyard.json: importable, every query parses as PromQL, and it charts
exactly the metrics docs/deployment.md says Wheelyard exports (every one of them, no other)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "wheelyard.json"
GUIDE = REPO / "docs" / "deployment.md"
#: The series a documented metric is queried by: the guide names counters as exposed (with
#: `_total`); a histogram is exposed as three series.
SUFFIXES = {"counter": ("",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def documented_metrics() -> dict[str, str]:
    """{name: type} from the metrics table of the operator guide."""
    rows = re.findall(
        r"^\| `(wheelyard_[a-z_]+)` \| (counter|histogram|gauge) \|", GUIDE.read_text(), re.M
    )
    assert rows, "no metrics table in docs/deployment.md"
    for name, kind in rows:
        assert (kind == "counter") == name.endswith("_total"), name
    return dict(rows)


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query, with Grafana's variables given concrete values."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
            found.append((panel["title"], expr.replace("$namespace", ".*")))
    return found


def selected_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            node = node.vector_selector
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "wheelyard" and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_query_parses_and_charts_only_documented_metrics() -> None:
    metrics = documented_metrics()
    exported = {name + suffix: name for name, kind in metrics.items() for suffix in SUFFIXES[kind]}
    used: set[str] = set()
    for title, expr in queries():
        names = selected_names(expr)
        assert names, (title, expr)
        unknown = names - set(exported)
        assert not unknown, f"{title}: {sorted(unknown)} are not exported"
        used |= {exported[n] for n in names}
    assert used == set(metrics), f"not charted: {sorted(set(metrics) - used)}"


def test_the_panels_an_operator_needs_are_there() -> None:
    titles = " | ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for wanted in (
        "request rate",
        "error rate",
        "latency p50",
        "latency p99",
        "bytes",
        "upstream",
        "breaker",
        "cache hit",
        "uploads",
        "authentication failures",
        "per-replica",
    ):
        assert wanted in titles, wanted


def test_histogram_quantiles_aggregate_by_le() -> None:
    """A quantile over buckets summed without `le` is silently wrong: catch it here."""
    for title, expr in queries():
        if "histogram_quantile" in expr:
            assert re.search(r"sum by \((?:[a-z_]+, )*le(?:, [a-z_]+)*\)", expr), title
