"""5. Dashboard load: every query of every dashboard (grafana/dashboards/**/*.json) against 90
days of data for 200 agents in a real Prometheus, over 24 h, 7 d and 90 d.

The data is built once and cached in bench/results/tsdb-<agents>-<key>/ (the key covers the
metric names the dashboards read, the rules and DATA_VERSION):
1. Template. The real stack runs for a minute: redis-server, the exporter (pub/sub and streams),
   `agent-exporter demo` with 200 agents at 60× speed, and Prometheus scraping every second with
   the repo's recording and alert rules. One instant query then takes every series Prometheus
   holds, raw and recorded, with its labels and last value.
2. History. The series whose names the dashboards' queries mention are written 90 days back into
   one OpenMetrics file, at 60 s for the last day, 5 min back to 7 days and 1 h beyond: counters
   and histogram buckets grow linearly from their template value, timestamps follow time, other
   gauges vary around their template value. `promtool tsdb create-blocks-from openmetrics` loads
   it. Recording-rule series are written the same way rather than with `promtool tsdb
   create-blocks-from rules`: the rules' 5-minute windows need raw samples at least every 2.5 min
   over all 90 days, about 20× the samples this machine can backfill in minutes.

Queries run as Grafana would send them: "All" in every variable, a step of range/1000 (or
range/maxDataPoints where a panel sets it),
$__rate_interval by Grafana's formula (max(step + scrape, 4 × scrape)) with the data's resolution
as the scrape interval, so every window holds samples. Per dashboard and range: each query alone
(median of runs; slowest and sum), and the dashboard's load time with 6 queries in flight at once
as a browser sends them.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.dashboards import DASHBOARDS, label_values, load, panels, query_variables
from tests.support.dashboards import expand as expand_all

from .common import REPO, RESULTS, Proc, Result, Target, free_port, median, start_exporter, start_redis, wait_until

RULES = REPO / "prometheus" / "rules"
DAY = 86400
TIERS = ((DAY, 60), (7 * DAY, 300), (90 * DAY, 3600))  # (age up to, sample interval), newest first
WINDOWS = {"24h": DAY, "7d": 7 * DAY, "90d": 90 * DAY}
POINTS = 1000
MIN_STEP = 15  # the datasource's timeInterval
IN_FLIGHT = 6  # a browser's concurrent requests to one host
LOAD_LIMIT = 2.0
USABLE_LIMIT = 10.0  # the 90 d view: what this benchmark calls usable
TEMPLATE_SECONDS = 60
DATA_VERSION = 1  # bump when the way the data is made changes: the cache is rebuilt
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class Query:
    kind: str  # range, instant, series, labels
    expr: str  # PromQL, a series selector, or a label name
    panel: str
    points: int = POINTS  # the panel's maxDataPoints: Grafana's step is range / points


# -- the dashboards -------------------------------------------------------------------------------

def queries(dashboard: dict[str, Any]) -> list[Query]:
    """What Grafana sends on load: variable queries, panel targets, annotation queries."""
    found = []
    for variable in query_variables(dashboard):
        selector, label = label_values(variable)
        if selector:
            found.append(Query("series", selector, f"${variable['name']}"))
        else:
            found.append(Query("labels", label, f"${variable['name']}"))
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if not target.get("expr") or target.get("hide"):
                continue
            if target.get("instant"):
                found.append(Query("instant", target["expr"], panel.get("title", "")))
            if target.get("range", not target.get("instant")):
                found.append(Query("range", target["expr"], panel.get("title", ""),
                                   panel.get("maxDataPoints", POINTS)))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            found.append(Query("range", annotation["expr"], f"annotation {annotation['name']}"))
    return found


def names_read(dashboards: dict[str, dict[str, Any]]) -> set[str]:
    return {token for d in dashboards.values() for q in queries(d)
            for token in NAME.findall(q.expr)}


def resolution(window: int) -> int:
    """The sample interval of the newest data a window reaches back into."""
    return next(step for age, step in TIERS if window <= age)


def expand(expr: str, dashboard: dict[str, Any], window: int, step: int) -> str:
    """Grafana's variable expansion, "All" selected everywhere."""
    scrape = resolution(window)
    return expand_all(expr, dashboard, {
        "__interval": f"{step}s", "__interval_ms": str(step * 1000),
        "__rate_interval": f"{max(step + scrape, 4 * scrape)}s",
        "__range": f"{window}s", "__range_s": str(window), "datasource": "prometheus"})


# -- the data -------------------------------------------------------------------------------------

def prometheus(workdir: Path, data: Path, config: dict[str, Any], *flags: str) -> tuple[Proc, str]:
    port = free_port()
    path = workdir / f"prometheus-{port}.yml"
    path.write_text(yaml.safe_dump(config))
    proc = Proc(["prometheus", f"--config.file={path}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}", *flags],
                workdir / f"prometheus-{port}.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/-/ready", timeout=2).ok, timeout=120,
               message="prometheus ready")
    return proc, url


def template(workdir: Path, agents: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every series (labels and last value) of a live stack, and each family's type."""
    redis = start_redis(workdir / "redis-template")
    exporter = start_exporter(workdir, redis.url, "both")
    job = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                         "evaluation_interval": "1s"},
              "rule_files": [str(RULES / "*.yml")],
              "scrape_configs": [{"job_name": job["scrape_configs"][0]["job_name"],
                                  "static_configs": [{"targets": [exporter.url[7:]]}]}]}
    prom, url = prometheus(workdir, workdir / "template-tsdb", config)
    demo = Proc([*exporter.proc.argv[:3], "demo", "--redis-url", redis.url, "--agents",
                 str(agents), "--speed", "60", "--seed", "1", "--transport", "both"],
                workdir / "demo.log", cwd=REPO)
    try:
        time.sleep(TEMPLATE_SECONDS)
        series = requests.get(url + "/api/v1/query", params={"query": '{__name__=~".+"}'},
                              timeout=60).json()["data"]["result"]
        metadata = requests.get(url + "/api/v1/metadata", timeout=60).json()["data"]
        return series, {name: entries[0]["type"] for name, entries in metadata.items()}
    finally:
        demo.stop()
        prom.stop()
        exporter.stop()
        redis.stop()


def kind(name: str, types: dict[str, str]) -> str:
    for suffix in ("", "_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix) and types.get(name[:len(name) - len(suffix)]):
            family = types[name[:len(name) - len(suffix)]]
            return "counter" if family in ("counter", "histogram", "summary") else "gauge"
    return "gauge"  # recorded series, up, scrape_*, ALERTS


def sample_times(end: int) -> list[int]:
    times: list[int] = []
    newer = end
    for age, step in TIERS:
        times = list(range(newer - step * ((newer - (end - age)) // step), newer, step)) + times
        newer = times[0]
    return times + [end]


def history(name: str, kind_: str, value: float, times: list[int],
            rand: random.Random) -> list[str]:
    """One series' values at `times`, shaped like its kind, ending near its template value."""
    if math.isnan(value) or math.isinf(value):
        return [repr(value).replace("inf", "Inf").replace("nan", "NaN")] * len(times)
    integral = value == int(value)
    if kind_ == "counter":
        start = times[0]
        per_second = value / 3600  # the template's value, every hour
        return [str(int(per_second * (t - start))) if integral else repr(per_second * (t - start))
                for t in times]
    if name.endswith("_timestamp_seconds"):
        return [str(t) for t in times]
    if not integral:
        return [repr(value * (0.9 + 0.2 * rand.random())) for _ in times]
    values, current = [], int(value)
    for _ in times:
        if rand.random() < 0.05:
            current = max(0, int(value) + rand.choice((-1, 1)))
        values.append(str(current))
    return values


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def recorded() -> set[str]:
    return {rule["record"] for path in RULES.glob("*.yml")
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}


def openmetrics(path: Path, series: list[dict[str, Any]], types: dict[str, str],
                end: int) -> int:
    """Write the history of `series`; returns the number of samples."""
    times = sample_times(end)
    stamps = [str(t) for t in times]
    with path.open("w") as out:
        for item in series:
            labels = dict(item["metric"])
            name = labels.pop("__name__")
            text = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
            prefix = f"{name}{{{text}}} "
            values = history(name, kind(name, types), float(item["value"][1]), times,
                             random.Random(prefix))
            out.write("".join(f"{prefix}{v} {t}\n" for v, t in zip(values, stamps)))
        out.write("# EOF\n")
    return len(series) * len(times)


def dataset(workdir: Path, dashboards: dict[str, dict[str, Any]], agents: int) -> Path:
    """The cached TSDB for the names these dashboards read and the rules; built when missing."""
    wanted = names_read(dashboards)
    digest = hashlib.sha256(repr((DATA_VERSION, TIERS, TEMPLATE_SECONDS, agents)).encode())
    digest.update(" ".join(sorted(wanted)).encode())
    for path in sorted(RULES.glob("*.yml")):
        digest.update(path.read_bytes())
    data = RESULTS / f"tsdb-{agents}-{digest.hexdigest()[:12]}"
    if (data / "meta.json").exists():
        return data
    for old in RESULTS.glob(f"tsdb-{agents}-*"):
        shutil.rmtree(old)
    started = time.monotonic()
    series, types = template(workdir, agents)
    series = [s for s in series if s["metric"]["__name__"] in wanted]
    end = int(time.time()) // 60 * 60
    source = workdir / "history.om"
    samples = openmetrics(source, series, types, end)
    blocks = workdir / "blocks"
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                    f"--max-block-duration={100 * 24}h", str(source), str(blocks)], check=True)
    source.unlink()
    shutil.move(blocks, data)
    present = {s["metric"]["__name__"] for s in series}
    known = recorded() | {n for n in wanted if kind(n, types) == "counter" or n in types}
    meta = {"end": end, "series": len(series), "samples": samples, "agents": agents,
            "names": sorted(present), "missing": sorted(wanted & known - present),
            "build_seconds": round(time.monotonic() - started)}
    (data / "meta.json").write_text(json.dumps(meta, indent=1))
    return data


# -- the queries ----------------------------------------------------------------------------------

def step_of(query: Query, window: int) -> int:
    return max(MIN_STEP, window // query.points)


def send(session: requests.Session, url: str, query: Query, expr: str, end: int,
         window: int) -> tuple[float, requests.Response]:
    """One request as Grafana sends it, timed until the whole answer has arrived (decoding
    it is the browser's work, not Prometheus')."""
    start, step = end - window, step_of(query, window)
    if query.kind == "range":
        endpoint, params = "query_range", {"query": expr, "start": start, "end": end,
                                           "step": step, "stats": "all"}
    elif query.kind == "instant":
        endpoint, params = "query", {"query": expr, "time": end, "stats": "all"}
    elif query.kind == "series":
        endpoint, params = "series", {"match[]": expr, "start": start, "end": end}
    else:
        endpoint, params = f"label/{expr}/values", {"start": start, "end": end}
    before = time.perf_counter()
    response = session.post(f"{url}/api/v1/{endpoint}", data=params, timeout=300)
    return time.perf_counter() - before, response


def outcome(response: requests.Response) -> tuple[int, float, str | None]:
    """(samples Prometheus read, its evaluation seconds, error)."""
    reply = response.json()
    if reply["status"] != "success":
        return 0, 0.0, reply.get("error", "failed")
    stats = reply["data"].get("stats", {}) if isinstance(reply["data"], dict) else {}
    return (stats.get("samples", {}).get("totalQueryableSamples", 0),
            stats.get("timings", {}).get("evalTotalTime", 0.0), None)


def measure(url: str, dashboard: dict[str, Any], end: int, window: int,
            runs: int) -> dict[str, Any]:
    items = [(q, expand(q.expr, dashboard, window, step_of(q, window)))
             for q in queries(dashboard)]
    session = requests.Session()
    one = lambda item: send(session, url, item[0], item[1], end, window)  # noqa: E731
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(one, items))  # warm the caches
        loads = []
        for _ in range(runs):
            before = time.perf_counter()
            list(pool.map(one, items))
            loads.append(time.perf_counter() - before)
    alone = [[one(item) for item in items] for _ in range(runs)]
    seconds = [median([run[i][0] for run in alone]) for i in range(len(items))]
    slowest = max(range(len(items)), key=seconds.__getitem__)
    outcomes = [outcome(response) for _, response in alone[0]]
    return {"queries": len(items), "slowest": seconds[slowest],
            "slowest_query": f"{items[slowest][0].panel}: {items[slowest][1]}",
            "slowest_eval": outcomes[slowest][1],
            "slowest_bytes": len(alone[0][slowest][1].content),
            "total": sum(seconds), "load": median(loads),
            "samples": sum(samples for samples, _, _ in outcomes),
            "errors": sorted({f"{q.panel}: {error}" for (q, _), (_, _, error)
                              in zip(items, outcomes) if error})}


def run(workdir: Path, quick: bool) -> Result:
    agents, runs = (40, 1) if quick else (200, 3)
    dashboards = load()
    result = Result("dashboards", f"Dashboard load against 90 days for {agents} agents, ms "
                                  f"(median of {runs} runs)",
                    ["dashboard", "range", "queries", f"load ({IN_FLIGHT} in flight)", "sum",
                     "slowest", "its eval", "its answer MB", "samples read", "errors",
                     "slowest query"])
    if not dashboards:
        result.notes.append(f"No dashboards under {DASHBOARDS.relative_to(REPO)}: nothing to run.")
        return result
    data = dataset(workdir, dashboards, agents)
    meta = json.loads((data / "meta.json").read_text())
    proc, url = prometheus(workdir, data, {"global": {}}, "--storage.tsdb.retention.time=400d",
                           "--storage.tsdb.min-block-duration=2h",
                           "--storage.tsdb.max-block-duration=2h")  # no compaction of the cache
    try:
        worst: dict[str, float] = {}
        for label, window in WINDOWS.items():
            for name, dashboard in dashboards.items():
                m = measure(url, dashboard, meta["end"], window, runs)
                result.raw[f"{name}@{label}"] = m
                worst[label] = max(worst.get(label, 0.0), m["load"])
                result.rows.append([name, label, m["queries"], m["load"] * 1000,
                                    m["total"] * 1000, m["slowest"] * 1000,
                                    m["slowest_eval"] * 1000, m["slowest_bytes"] / 1e6,
                                    m["samples"], len(m["errors"]), m["slowest_query"][:80]])
    finally:
        proc.stop()
    for label in ("24h", "7d"):
        result.targets.append(Target(f"every dashboard loads in < {LOAD_LIMIT:.0f} s over "
                                     f"{label} (slowest dashboard)", worst[label] * 1000,
                                     LOAD_LIMIT * 1000, "ms"))
    result.targets.append(Target(f"the 90 d view stays usable (< {USABLE_LIMIT:.0f} s, slowest "
                                 "dashboard)", worst["90d"] * 1000, USABLE_LIMIT * 1000, "ms"))
    result.notes.append(f"Data: {meta['series']:,} series, {meta['samples']:,} samples "
                        f"(60 s for 24 h, 5 min to 7 d, 1 h to 90 d), built in "
                        f"{meta['build_seconds']} s and cached in {data.relative_to(REPO)}.")
    result.notes.append("load: the dashboard's queries with 6 in flight; sum: one at a time; "
                        "slowest: that query's time, Prometheus' own evaluation time of it and "
                        "its (uncompressed) answer — the rest is JSON encoding, gzip and "
                        "transfer. Query cost follows the samples read: production data scraped "
                        "every 15 s holds 4× (24 h), 20× (7 d) and 240× (older) the samples of "
                        "this data.")
    if meta["missing"]:
        result.notes.append("Read by a dashboard but absent from the one-minute template "
                            f"(their queries return nothing): {', '.join(meta['missing'])}.")
    return result
