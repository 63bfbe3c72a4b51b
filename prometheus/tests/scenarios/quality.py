"""Score the alert rules against the incident scenarios and write prometheus/tests/QUALITY.md.

    python prometheus/tests/scenarios/quality.py            # run, print, write QUALITY.md
    python prometheus/tests/scenarios/quality.py --check    # run, fail if QUALITY.md is stale

For every timeline of scenarios.py it simulates the metrics, renders a promtool test file that
queries ALERTS{alertstate="firing"} once a minute, runs `promtool test rules` (the queries are
written to fail, so promtool prints what fired when), and turns the output into firing episodes
(one alert label set, consecutive minutes). Then:

- an episode is *true* when it overlaps an incident window [start, end + tail) whose expected or
  allowed alerts name it (and, for alerts with a job label, of the incident's job); every other
  episode -- in normal hours or in an incident it does not belong to -- is *false*;
- an expected alert is *detected* when it starts firing inside its incident window; the detection
  delay is the first firing minute minus the incident start;
- precision = true episodes / all episodes, recall = detected / expected.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMETHEUS = HERE.parent.parent
RULES = sorted(str(p) for p in (PROMETHEUS / "rules").glob("*.yml"))
REPORT = PROMETHEUS / "tests" / "QUALITY.md"

sys.path.insert(0, str(HERE))
import scenarios  # noqa: E402

_BLOCK = re.compile(r'expr: "ALERTS.*?", time: (\S+?),\n\s+exp: .*?\n\s+got: (.*?)\n', re.S)
_SAMPLE = re.compile(r"\{(.*?)\} \S+")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_UNITS = {"y": 525600, "w": 10080, "d": 1440, "h": 60, "m": 1}


def minutes(duration: str) -> int:
    """promtool's duration (1d2h5m, 7m, 0s) -> minutes."""
    total = 0
    for number, unit in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", duration):
        total += int(number) * _UNITS.get(unit, 0)
    return total


@dataclass(frozen=True)
class Episode:
    timeline: str
    alertname: str
    labels: tuple[tuple[str, str], ...]
    start: int
    end: int  # last firing minute

    @property
    def job(self) -> str | None:
        return dict(self.labels).get("job")

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.labels
                          if k not in ("alertname", "severity", "category", "requires"))
        return f"{self.alertname}{{{extra}}} {self.start}m-{self.end}m"


def parse(output: str, timeline: str) -> list[Episode]:
    firing: dict[tuple, list[int]] = defaultdict(list)
    for when, got in _BLOCK.findall(output):
        minute = minutes(when)
        for sample in _SAMPLE.findall(got):
            labels = tuple(sorted((k, v) for k, v in _LABEL.findall(sample)
                                  if k not in ("__name__", "alertstate")))
            firing[labels].append(minute)
    episodes = []
    for labels, mins in firing.items():
        mins.sort()
        start = previous = mins[0]
        for m in mins[1:] + [None]:
            if m is None or m != previous + 1:
                episodes.append(Episode(timeline, dict(labels)["alertname"], labels, start,
                                        previous))
                if m is not None:
                    start = m
            if m is not None:
                previous = m
    return sorted(episodes, key=lambda e: (e.start, e.alertname, e.labels))


def _start_promtool(path: Path) -> subprocess.Popen:
    promtool = shutil.which("promtool")
    if not promtool:
        raise RuntimeError("promtool is not installed")
    return subprocess.Popen([promtool, "test", "rules", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish_promtool(name: str, proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    # Every minute with a firing alert is a "failed" query; anything else promtool complains
    # about (a rule file that does not load, a bad series) is a real error.
    problems = [line for line in out.splitlines()
                if not re.match(r"\s*(got|exp|expr):", line)
                and re.search(r"err: |could not|error|panic", line, re.I)]
    if problems or ("FAILED" not in out and "SUCCESS" not in out):
        raise RuntimeError(f"promtool failed on {name}:\n" + "\n".join(problems[:20] or
                                                                      [out[-3000:]]))
    return out


def _job(incident: scenarios.Incident) -> str:
    return scenarios.JOBS[incident.job]["job"]


def _belongs(e: Episode, i: scenarios.Incident, names: tuple[str, ...]) -> bool:
    return (e.alertname in names and (e.job is None or e.job == _job(i))
            and e.start < i.end + i.tail and e.end >= i.start)


def score(episodes_by_timeline: dict[str, list[Episode]]) -> dict:
    detections, false_episodes, true_episodes = [], [], []
    for timeline in scenarios.TIMELINES:
        episodes = episodes_by_timeline[timeline.name]
        for e in episodes:
            if any(_belongs(e, i, i.expected + i.allowed) for i in timeline.incidents):
                true_episodes.append(e)
            else:
                false_episodes.append(e)
        for incident in timeline.incidents:
            for alertname in incident.expected:
                starts = [e.start for e in episodes
                          if e.alertname == alertname and (e.job in (None, _job(incident)))
                          and incident.start <= e.start < incident.end + incident.tail]
                delay = min(starts) - incident.start if starts else None
                side = sorted({e.alertname for e in episodes
                               if _belongs(e, incident, incident.allowed)
                               and e.alertname not in incident.expected})
                detections.append({"timeline": timeline.name, "incident": incident,
                                   "alertname": alertname, "delay": delay, "side": side})
    normal_minutes = 0
    for timeline in scenarios.TIMELINES:
        covered = set()
        for i in timeline.incidents:
            covered.update(range(i.start, min(timeline.minutes, i.end + i.tail)))
        normal_minutes += timeline.minutes - len(covered)
    # Per alert: the hours in which it had to stay silent (outside every incident window that
    # expects or allows it).
    silent: dict[str, float] = {}
    for alertname in {d["alertname"] for d in detections}:
        total = 0
        for timeline in scenarios.TIMELINES:
            covered = set()
            for i in timeline.incidents:
                if alertname in i.expected + i.allowed:
                    covered.update(range(i.start, min(timeline.minutes, i.end + i.tail)))
            total += timeline.minutes - len(covered)
        silent[alertname] = total / 60
    detected = [d for d in detections if d["delay"] is not None]
    total = len(true_episodes) + len(false_episodes)
    return {
        "detections": detections,
        "true": true_episodes,
        "false": false_episodes,
        "precision": len(true_episodes) / total if total else 1.0,
        "recall": len(detected) / len(detections) if detections else 1.0,
        "normal_hours": normal_minutes / 60,
        "silent_hours": silent,
        "hours": sum(t.minutes for t in scenarios.TIMELINES) / 60,
    }


def evaluate(workdir: Path | None = None) -> dict:
    """Simulate every timeline and run promtool on each (overlapping simulation and runs)."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="alert-quality-"))
    procs = {}
    for timeline in scenarios.TIMELINES:
        path = tmp / f"{timeline.name}.yml"
        path.write_text(scenarios.render(timeline, RULES))
        procs[timeline.name] = _start_promtool(path)
    outputs = {name: _finish_promtool(name, proc) for name, proc in procs.items()}
    episodes = {name: parse(out, name) for name, out in outputs.items()}
    result = score(episodes)
    result["episodes"] = episodes
    if workdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(result: dict) -> str:
    """QUALITY.md (deterministic: the same rules and scenarios give the same text)."""
    lines = [
        "# Alert quality",
        "",
        "Generated by `prometheus/tests/scenarios/quality.py` (checked by",
        "`tests/test_prometheus_rules.py`); do not edit by hand.",
        "",
        "The scenario suite simulates "
        f"{result['hours']:.0f} hours of scrapes (one a minute) of agent swarms with a daily load "
        "swing and random noise (Poisson task and query arrivals, log-normal durations, noisy "
        "gauges), injects one incident of every kind, and runs the real rule files over it with "
        "`promtool test rules`. "
        f"{result['normal_hours']:.1f} of those hours are outside every incident and its recovery "
        "tail; each alert must also stay silent during the incidents that do not concern it, "
        f"at least {min(result['silent_hours'].values()):.1f} hours per alert (last column "
        "below).",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| precision (true firing episodes / all firing episodes) | "
        f"{100 * result['precision']:.1f} % ({len(result['true'])} / "
        f"{len(result['true']) + len(result['false'])}) | >= 95 % |",
        f"| recall (expected alerts that fired in their incident) | "
        f"{100 * result['recall']:.1f} % "
        f"({sum(d['delay'] is not None for d in result['detections'])} / "
        f"{len(result['detections'])}) | >= 95 % |",
        f"| false episodes in normal hours or in unrelated incidents | {len(result['false'])} | 0 |",
        "",
        "Watchdog always fires by design and is left out. An episode is one label set firing for "
        "consecutive minutes; consequences an incident may legitimately trigger (for example "
        "the warning-level temperature alert during a critical overheat) are listed per "
        "incident as *allowed* and count as true. Delays are measured at the scenarios' "
        "1-minute evaluation interval, from the first minute of the injected fault to the "
        "first minute the alert is firing (so they include the rule's `for`).",
        "",
        "## Detection delay per alert",
        "",
        "| alert | incident (timeline, start) | injected fault | delay | also fired (allowed) "
        "| hours it had to stay silent |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for d in sorted(result["detections"], key=lambda d: d["alertname"]):
        i = d["incident"]
        delay = "**not detected**" if d["delay"] is None else f"{d['delay']} min"
        lines.append(f"| {d['alertname']} | {i.name} ({d['timeline']}, "
                     f"{i.start // 60:02d}:{i.start % 60:02d}) | {FAULTS.get(i.kind, i.kind)} | "
                     f"{delay} | {', '.join(d['side']) or '-'} | "
                     f"{result['silent_hours'][d['alertname']]:.1f} |")
    lines += ["", "## False episodes", ""]
    if result["false"]:
        lines += [f"- {e.timeline}: {e.describe()}" for e in result["false"]]
    else:
        lines.append("None.")
    lines += ["", "## Timelines", ""]
    for t in scenarios.TIMELINES:
        lines.append(f"- **{t.name}** ({t.minutes // 60} h, seed {t.seed}): {t.description}")
    lines.append("")
    return "\n".join(lines)


FAULTS = {
    "gpu_overheat": "GPU 1 at ~87 °C",
    "gpu_critical": "GPU 1 at ~93 °C",
    "gpu_leak": "GPU 0 memory +350 MB/min",
    "gpu_mem_exhaustion": "GPU 0 memory at 97 %",
    "gpu_underutilized": "GPUs ~12 % busy while training",
    "new_project_high_loss": "new project starting at loss 8",
    "loss_diverging": "loss grows x e per 12 min",
    "loss_plateau": "epoch loss flat within 0.1 %",
    "training_stalled": "progress events stop",
    "host_cpu": "CPU 96 %",
    "host_memory": "memory 95 %",
    "disk_filling": "/ fills 30 GB/h",
    "rag_latency": "docs latency x8",
    "rag_failures": "docs 20 % failures",
    "rag_cache": "docs cache hits 5 %",
    "rag_low_confidence": "web 50 % low confidence",
    "agent_errors": "agent a3 fails 50 %",
    "agent_lost": "agent a5 silent",
    "swarm_unavailable": "2 of 6 agents unavailable",
    "load_imbalance": "a1 gets 45 % of the tasks",
    "throughput_spike": "task rate x3",
    "throughput_collapse": "task rate x0.01",
    "task_slowdown": "task durations x2",
    "sla_breach": "25 % of tasks stuck > 30 min",
    "medium_burn": "9 % of tasks over SLA",
    "slow_burn": "4.5 % of tasks over SLA",
    "workflow_slow": "index step 900 s, 2/min",
    "redis_down": "exporter loses Redis 20 min",
    "source_stalled": "a source loses an ACL permission 20 min",
    "exporter_down": "exporter unreachable 30 min, restarts",
    "collector_failing": "GPU collector fails",
    "series_overflow": "series budget overflow",
    "events_lost": "40 events lost",
    "invalid_events": "15 % invalid task events",
    "llm_agent_spend": "agent a2 makes 6x the LLM calls",
    "llm_swarm_spend": "every agent makes 3x the LLM calls",
    "llm_provider_outage": "openai: 25 % of calls 429, 15 % time out",
    "llm_slow": "anthropic: calls 5x, first tokens 10x slower",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write QUALITY.md; exit 1 if it differs from the result")
    parser.add_argument("--keep", metavar="DIR", help="write the promtool files into DIR")
    args = parser.parse_args(argv)
    workdir = None
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
    result = evaluate(workdir)
    text = report(result)
    print(f"precision {100 * result['precision']:.1f} %  recall {100 * result['recall']:.1f} %")
    for e in result["false"]:
        print("false:", e.timeline, e.describe())
    for d in result["detections"]:
        if d["delay"] is None:
            print("missed:", d["timeline"], d["incident"].name, d["alertname"])
    if args.check:
        current = REPORT.read_text() if REPORT.exists() else ""
        if current != text:
            print(f"{REPORT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    REPORT.write_text(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
