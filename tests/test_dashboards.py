"""Static checks of the Grafana bundle, in the spirit of Grafana's dashboard linter.

The dashboards are generated (grafana/generator), so the frame, the data source behind every
panel, units and descriptions present, sizes and the grid are made by construction; what is
checked here is that the committed JSON is what the code generates, and what the code cannot
make right by itself: `$__rate_interval` in every rate written by hand, variables used as regex
filters, units Grafana knows, links that resolve, thresholds at the alert rules' thresholds,
every metric read being one the exporter documents or a rule records, provisioning that matches
the compose mounts, and a guide entry per panel. tests/test_dashboards_live.py runs every query
against a live Prometheus.
"""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from grafana import generator
from grafana.generator.layout import place
from tests.support.dashboards import (
    DASHBOARDS,
    VARIABLE_REF,
    Dashboard,
    all_queries,
    load,
    metric_names,
    panels,
    query_variables,
)
from tests.support.metric_list import documented, is_documented
from tests.support.procs import REPO

PROVISIONING = REPO / "grafana" / "provisioning"
RULES = REPO / "prometheus" / "rules"
DS = {"type": "prometheus", "uid": "${datasource}"}
HOME_UID = "agent-exporter-overview"

# Grafana unit ids the bundle may use (a subset of Grafana's unit registry).
UNITS = frozenset({
    "none", "short", "percent", "percentunit", "s", "ms", "dtdurations", "dateTimeAsIso",
    "dateTimeFromNow", "bytes", "decbytes", "Bps", "binBps", "reqps", "ops", "opm", "cps", "cpm",
    "iops", "pps", "celsius", "watt", "joule", "hertz", "currencyUSD",
})
# Grafana's global variables (docs: dashboards/variables/add-template-variables, "Global variables").
GRAFANA_VARIABLES = frozenset({
    "__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
    "__from", "__to", "__dashboard", "__org", "__user", "__name", "__url_time_range",
    "__all_variables", "__timezone",
})
# Series Prometheus itself creates: the alert state and the scrape's synthetic samples.
PROMETHEUS_SERIES = frozenset({
    "up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added",
})
RATE_CALL = re.compile(r"\b(rate|irate|increase)\s*\(")


# -- PromQL ----------------------------------------------------------------------------------

def call_argument(expr: str, open_paren: int) -> str:
    """The text between the parenthesis at `open_paren` and its match."""
    depth = 0
    for i in range(open_paren, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[open_paren + 1:i]
    raise AssertionError(f"unbalanced parentheses in {expr}")


def rate_windows(expr: str) -> list[str]:
    """The range selectors of every rate/irate/increase call in `expr` ("<none>" if missing)."""
    windows = []
    for match in RATE_CALL.finditer(expr):
        windows += re.findall(r"\[[^\]]*\]", call_argument(expr, match.end() - 1)) or ["<none>"]
    return windows


def recorded_series() -> set[str]:
    return {rule["record"] for path in RULES.glob("*.rules.yml")
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}


def process_metrics() -> set[str]:
    """prometheus-client's process_* samples, which the exporter serves on Linux."""
    from prometheus_client import ProcessCollector

    return {sample.name for family in ProcessCollector(registry=None).collect()
            for sample in family.samples}


def alert_thresholds() -> dict[str, set[float]]:
    """Series → thresholds, from alert rules whose expression starts `series <op> number`."""
    found: dict[str, set[float]] = {}
    for path in RULES.glob("*.alerts.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                match = re.match(r"\s*([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s*(?:<=|>=|<|>)\s*"
                                 r"([0-9.]+(?:e[0-9]+)?)\s*$", rule["expr"].splitlines()[0])
                if match:
                    found.setdefault(match.group(1), set()).add(float(match.group(2)))
    return found


def plotted_series(expr: str) -> str | None:
    """The series a target shows as it is (label matchers and one min/max/avg/sum aside)."""
    bare = re.sub(r"\s+", "", re.sub(r"\{[^}]*\}", "", expr))
    match = re.fullmatch(r"(?:(?:min|max|avg|sum)(?:by\([\w,]*\))?\()?([a-zA-Z_:][\w:]*)\)?", bare)
    return match.group(1) if match else None


def panel_threshold_values(panel: dict[str, Any]) -> set[float]:
    config = panel["fieldConfig"]
    steps = list(config["defaults"].get("thresholds", {}).get("steps", []))
    for override in config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "thresholds":
                steps += prop["value"]["steps"]
    return {float(step["value"]) for step in steps if step.get("value") is not None}


def units(panel: dict[str, Any]) -> list[str]:
    """Every unit a panel sets: its default, its overrides, a heatmap's axis and cells."""
    config = panel["fieldConfig"]
    found = [config["defaults"].get("unit")]
    found += [prop["value"] for override in config.get("overrides", [])
              for prop in override["properties"] if prop["id"] == "unit"]
    options = panel.get("options", {})
    found += [options[key]["unit"] for key in ("yAxis", "cellValues")
              if "unit" in options.get(key, {})]
    return found


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dashboards() -> dict[str, Dashboard]:
    loaded = load()
    assert loaded, "no dashboards under grafana/dashboards"
    return loaded


@pytest.fixture(scope="module")
def grafana_service() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path of a service's bind mounts."""
    found = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (REPO / source).resolve()
    return found


def host_path(service: dict[str, Any], container_path: str) -> Path:
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if path.is_relative_to(target):
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not inside a bind mount of the service")


# -- the generator ---------------------------------------------------------------------------

def test_committed_dashboards_are_the_generated_ones() -> None:
    """What provisioning serves is what grafana/generator makes (./scripts/dashboards)."""
    generated = generator.generate()
    assert sorted(generated) == sorted(load())
    for path, text in generated.items():
        assert (DASHBOARDS / path).read_text() == text, f"{path}: run ./scripts/dashboards"


def test_check_names_stale_missing_and_unknown_files(tmp_path: Path) -> None:
    copy = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS, copy)
    assert generator.stale(copy) == []
    edited = copy / "swarm" / "rag.json"
    edited.write_text(edited.read_text().replace("Cache hit ratio", "Cache hits"))
    (copy / "infrastructure" / "gpu.json").unlink()
    (copy / "swarm" / "handmade.json").write_text("{}")
    assert generator.stale(copy) == ["swarm/rag.json", "infrastructure/gpu.json",
                                     "swarm/handmade.json"]


def test_panels_float_up_into_the_first_free_spot() -> None:
    """The overview's first section: a gauge and a bar gauge 8 high, three stats beside them
    and a wide graph under the stats (not under the gauges), then a row header below all."""
    sizes = [(24, 1, True), (5, 8, False), (7, 8, False), (4, 4, False), (4, 4, False),
             (4, 4, False), (12, 4, False), (24, 1, True), (4, 4, False)]
    assert place(sizes) == [(0, 0), (0, 1), (5, 1), (12, 1), (16, 1), (20, 1), (12, 5), (0, 9),
                            (0, 10)]
    assert place([(12, 8, False), (12, 4, False), (12, 4, False), (24, 2, False)]) == \
        [(0, 0), (12, 0), (12, 4), (0, 8)]
    with pytest.raises(ValueError):
        place([(25, 4, False)])


# -- the dashboards --------------------------------------------------------------------------

def test_uids_and_titles_are_unique_and_stable(dashboards: dict[str, Dashboard]) -> None:
    uids = [d["uid"] for d in dashboards.values()]
    titles = [d["title"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles
    for path, dashboard in dashboards.items():
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"]), path
        assert dashboard.get("id") is None, f"{path}: a provisioned dashboard has no fixed id"
        repeated = [t for t, n in Counter(p["title"] for p in panels(dashboard)).items() if n > 1]
        assert not repeated, f"{path}: duplicate panel titles {repeated}"


def test_one_datasource_variable_behind_every_query(dashboards: dict[str, Dashboard]) -> None:
    for path, dashboard in dashboards.items():
        sources = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert [(v["name"], v["query"]) for v in sources] == [("datasource", "prometheus")], path
        for panel in panels(dashboard):
            assert panel.get("datasource") == DS, f"{path}: panel {panel['title']}"
            assert panel.get("targets"), f"{path}: panel {panel['title']} has no query"
            for target in panel["targets"]:
                assert target.get("datasource") == DS, f"{path}: {panel['title']} {target}"
        for variable in query_variables(dashboard):
            assert variable["datasource"] == DS, f"{path}: variable {variable['name']}"
        for annotation in dashboard["annotations"]["list"]:
            assert annotation["datasource"] == DS, f"{path}: annotation {annotation['name']}"


def test_rate_functions_use_rate_interval(dashboards: dict[str, Dashboard]) -> None:
    bad = [(path, where, window) for path, dashboard in dashboards.items()
           for where, expr in all_queries(dashboard)
           for window in rate_windows(expr) if window != "[$__rate_interval]"]
    assert not bad, f"rate/irate/increase without [$__rate_interval]: {bad}"


def test_variables_are_defined_and_used_as_regex_filters(dashboards: dict[str, Dashboard]) -> None:
    """Multi-value variables expand to `a|b` or the `.+` of All: only `=~` matches them."""
    for path, dashboard in dashboards.items():
        defined = {v["name"] for v in dashboard["templating"]["list"]}
        for where, expr in all_queries(dashboard):
            for ref in VARIABLE_REF.findall(expr):
                name = next(part for part in ref if part)
                assert name in defined | GRAFANA_VARIABLES, f"{path}: {where}: ${name} undefined"
            rest = re.sub(r'\w+\s*=~\s*"\$\w+"', "", expr).replace("$__rate_interval", "")
            assert "$" not in rest, f"{path}: {where}: a variable outside a =~ matcher: {expr}"
        for variable in query_variables(dashboard):
            assert variable["includeAll"] and variable["allValue"] == ".+", variable["name"]


def test_units_are_grafana_units(dashboards: dict[str, Dashboard]) -> None:
    for path, dashboard in dashboards.items():
        for panel in panels(dashboard):
            found = units(panel)
            assert found[0], f"{path}: panel {panel['title']} has no unit"
            assert set(found) <= UNITS, f"{path}: {panel['title']}: {set(found) - UNITS}"


def test_links_reach_every_dashboard(dashboards: dict[str, Dashboard]) -> None:
    uids = {d["uid"] for d in dashboards.values()}
    for path, dashboard in dashboards.items():
        tag_links = [link for link in dashboard["links"] if link["type"] == "dashboards"]
        assert tag_links, f"{path}: no link to the other dashboards"
        for link in tag_links:
            reached = [d for d in dashboards.values() if set(link["tags"]) <= set(d["tags"])]
            assert len(reached) == len(dashboards), f"{path}: {link['tags']} misses dashboards"
        for panel in panels(dashboard):
            for link in panel.get("links", []):
                target = re.match(r"/d/([\w-]+)", link["url"])
                assert target and target.group(1) in uids, f"{path}: {panel['title']}: {link}"


def test_every_metric_read_is_documented_or_recorded(dashboards: dict[str, Dashboard]) -> None:
    names = documented()
    known = recorded_series() | PROMETHEUS_SERIES | process_metrics()
    unknown = {(path, where, name) for path, dashboard in dashboards.items()
               for where, expr in all_queries(dashboard) for name in metric_names(expr)
               if name not in known and not is_documented(name, names)}
    assert not unknown, f"metrics neither documented nor recorded: {sorted(unknown)}"


def test_panels_show_the_alert_thresholds(dashboards: dict[str, Dashboard]) -> None:
    """A panel that plots a series an alert compares with a number marks that number."""
    thresholds = alert_thresholds()
    assert "training_loss" in thresholds  # the parser still finds the rules
    checked = 0
    for path, dashboard in dashboards.items():
        for panel in panels(dashboard):
            for target in panel["targets"]:
                series = plotted_series(target["expr"])
                if series in thresholds:
                    checked += 1
                    missing = thresholds[series] - panel_threshold_values(panel)
                    assert not missing, f"{path}: {panel['title']} lacks thresholds {missing}"
    assert checked >= 20


def test_metric_name_parser() -> None:
    """The tokenizer behind the metric checks, on the shapes the dashboards use."""
    assert metric_names('sum by (le) (increase(a_bucket{job=~"$job", x="rate(y)"}'
                        '[$__rate_interval]))') == {"a_bucket"}
    assert metric_names("1 - job:x:ratio_rate1d{a=\"b\"} / (1 - 0.99) or vector(0)") == \
        {"job:x:ratio_rate1d"}
    assert metric_names("a / on (job, instance) group_left () b offset 1h > bool 1e9") == {"a", "b"}
    assert metric_names('ALERTS{alertstate="firing"}') == {"ALERTS"}
    assert rate_windows("rate(a[5m]) + increase(b[$__rate_interval])") == ["[5m]",
                                                                           "[$__rate_interval]"]
    assert rate_windows("irate(a)") == ["<none>"]
    assert plotted_series('max by (agent) (x:y:z{a="b"})') == "x:y:z"
    assert plotted_series("count(x > 0.05) or vector(0)") is None


# -- provisioning ----------------------------------------------------------------------------

def test_provisioning_matches_the_compose_mounts(grafana_service: dict[str, Any],
                                                 dashboards: dict[str, Dashboard]) -> None:
    volumes = mounts(grafana_service)
    assert volumes["/etc/grafana/provisioning"] == PROVISIONING.resolve()
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["foldersFromFilesStructure"]
    assert "folder" not in provider  # Grafana refuses a folder next to foldersFromFilesStructure
    assert host_path(grafana_service, provider["options"]["path"]) == DASHBOARDS.resolve()
    for path in dashboards:
        assert len(PurePosixPath(path).parts) <= 2, f"{path}: folders are one level"

    home = host_path(grafana_service,
                     grafana_service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home == (DASHBOARDS / "overview.json").resolve()
    assert json.loads(home.read_text())["uid"] == HOME_UID


def test_datasources_match_the_stack(dashboards: dict[str, Dashboard]) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    sources = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    by_type = {source["type"]: source for source in sources["datasources"]}
    assert set(by_type) == {"prometheus", "alertmanager"}

    def service_url(name: str) -> str:
        ports = [int(str(p).rsplit(":", 1)[1]) for p in compose[name]["ports"]]
        return f"http://{name}:{ports[0]}"

    prometheus = by_type["prometheus"]
    assert prometheus["url"] == service_url("prometheus") and prometheus["isDefault"]
    scrape = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["global"]
    assert prometheus["jsonData"]["timeInterval"] == scrape["scrape_interval"]
    alertmanager = by_type["alertmanager"]
    assert alertmanager["url"] == service_url("alertmanager")
    assert (alertmanager["uid"], alertmanager["jsonData"]["implementation"]) == \
        ("alertmanager", "prometheus")
    for path, dashboard in dashboards.items():
        [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert variable["current"]["value"] == prometheus["uid"], path


def test_guide_describes_every_dashboard_and_panel(dashboards: dict[str, Dashboard]) -> None:
    guide = (REPO / "docs" / "dashboards.md").read_text()
    for path, dashboard in dashboards.items():
        assert dashboard["title"] in guide and dashboard["uid"] in guide, path
        for panel in panels(dashboard):
            assert f"| {panel['title']} |" in guide, f"docs/dashboards.md lacks {panel['title']}"
            if panel.get("description") and panel["type"] != "row":
                row = f"| {panel['title']} | {panel['description']} |"
                assert row in guide, f"docs/dashboards.md describes {panel['title']} otherwise"
