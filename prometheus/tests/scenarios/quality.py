"""Score the alert rules against the incident scenarios and write prometheus/tests/QUALITY.md.

    python -m prometheus.tests.scenarios.quality            # run, print, write QUALITY.md
    python -m prometheus.tests.scenarios.quality --check    # run, fail if QUALITY.md is stale

(from the repository root). For every timeline of scenarios.py and both evaluation intervals
(1 m and 15 s) it simulates the metrics, renders a promtool test file that queries ALERTS at
every evaluation, runs `promtool test rules` (the queries are written to fail, so promtool prints
what was pending or firing when), and turns the output into episodes (one alert label set in one
state, consecutive evaluations). Then:

- a firing episode is *true* when it overlaps an incident window [start, end + tail) whose
  expected or allowed alerts name it (and, for alerts with a job label, of the incident's job);
  every other firing episode -- in normal hours or in an incident it does not belong to -- is
  *false*;
- a *quiet* incident (a fresh start, a restart, a new agent) allows nothing: an episode of its
  job overlapping it, pending or firing, that belongs to no other incident is a *quiet breach*
  (the z-score anomaly alerts excepted: |z| > 3 is their statistical false-alarm rate, counted
  in the precision, not news about the event);
- while Prometheus is down (a gap in the samples) it evaluates nothing: promtool's evaluations
  in a gap are left out;
- an expected alert is *detected* when it starts firing inside its incident window; the detection
  delay is the first firing time minus the incident start; an alert the incident names as
  *sustained* (the stall's TaskThroughputLow) must then fire without a break until it ends;
- precision = true firing episodes / all firing episodes, recall = detected / expected.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from prometheus.tests.scenarios import scenarios

HERE = Path(__file__).resolve().parent
PROMETHEUS = HERE.parent.parent
RULES = sorted(str(p) for p in (PROMETHEUS / "rules").glob("*.yml"))
REPORT = PROMETHEUS / "tests" / "QUALITY.md"
STEPS = (60, 15)  # evaluation (and scrape) intervals, seconds

_BLOCK = re.compile(r'expr: "ALERTS.*?", time: (\S+?),\n\s+exp: .*?\n\s+got: (.*?)\n', re.S)
_SAMPLE = re.compile(r"\{(.*?)\} \S+")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_UNITS = {"y": 525600.0, "w": 10080.0, "d": 1440.0, "h": 60.0, "m": 1.0, "s": 1 / 60, "ms": 0.0}


def fingerprint() -> str:
    """sha256 of what the report depends on: the rule files and the scenario suite."""
    digest = hashlib.sha256()
    for path in [*map(Path, RULES), HERE / "scenarios.py", Path(__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def minutes(duration: str) -> float:
    """promtool's duration (1d2h5m, 7m15s, 0s) -> minutes."""
    return sum(int(number) * _UNITS[unit]
               for number, unit in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", duration))


@dataclass(frozen=True)
class Episode:
    timeline: str
    alertname: str
    state: str  # pending or firing
    labels: tuple[tuple[str, str], ...]
    start: float  # minutes
    end: float  # the last evaluation in this state

    @property
    def job(self) -> str | None:
        return dict(self.labels).get("job")

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.labels
                          if k not in ("alertname", "severity", "category", "requires"))
        return f"{self.alertname}{{{extra}}} {self.state} {self.start:g}m-{self.end:g}m"


def parse(output: str, timeline: str, step: int, gaps: set[int]) -> list[Episode]:
    seen: dict[tuple, list[float]] = defaultdict(list)
    for when, got in _BLOCK.findall(output):
        minute = minutes(when)
        if int(minute) in gaps:
            continue
        for sample in _SAMPLE.findall(got):
            labels = dict(_LABEL.findall(sample))
            state = labels.pop("alertstate")
            labels.pop("__name__", None)
            seen[(state, tuple(sorted(labels.items())))].append(minute)
    episodes = []
    for (state, labels), times in seen.items():
        times.sort()
        start = previous = times[0]
        for t in times[1:] + [None]:
            if t is None or t - previous > step / 60 + 1e-9:
                episodes.append(Episode(timeline, dict(labels)["alertname"], state, labels,
                                        start, previous))
                if t is not None:
                    start = t
            if t is not None:
                previous = t
    return sorted(episodes, key=lambda e: (e.start, e.alertname, e.state, e.labels))


def _start_promtool(path: Path) -> subprocess.Popen:
    promtool = shutil.which("promtool")
    if not promtool:
        raise RuntimeError("promtool is not installed")
    return subprocess.Popen([promtool, "test", "rules", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish_promtool(name: str, proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=1800)
    # Every evaluation with an alert is a "failed" query; anything else promtool complains
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


def _overlaps(e: Episode, i: scenarios.Incident) -> bool:
    return e.start < i.end + i.tail and e.end >= i.start and e.job in (None, _job(i))


def _belongs(e: Episode, i: scenarios.Incident, names: tuple[str, ...]) -> bool:
    return e.alertname in names and _overlaps(e, i)


def _breaks(episodes: list[Episode], incident: scenarios.Incident, alertname: str,
            detected: float, step: int) -> list[str]:
    """Evaluations between the detection and the incident's end at which the alert of the
    incident's job was not firing."""
    firing = [e for e in episodes if e.state == "firing" and e.alertname == alertname
              and e.job in (None, _job(incident))]
    covered = set()
    for e in firing:
        t = e.start
        while t <= e.end + 1e-9:
            covered.add(round(t * 60))
            t += step / 60
    gaps = [f"{t / 60:g}m" for t in range(round(detected * 60), incident.end * 60, step)
            if t not in covered]
    return gaps


def score(episodes_by_timeline: dict[str, list[Episode]], step: int) -> dict:
    detections: list[dict] = []
    false_episodes: list[Episode] = []
    true_episodes: list[Episode] = []
    quiet_breaches: list[Episode] = []
    for timeline in scenarios.TIMELINES:
        episodes = episodes_by_timeline[timeline.name]
        for e in episodes:
            belongs = any(_belongs(e, i, i.expected + i.allowed) for i in timeline.incidents)
            if not belongs and not e.alertname.endswith("Anomaly") and any(
                    i.quiet and _overlaps(e, i) for i in timeline.incidents):
                quiet_breaches.append(e)
            if e.state != "firing":
                continue
            (true_episodes if belongs else false_episodes).append(e)
        for incident in timeline.incidents:
            for alertname in incident.expected:
                starts = [e.start for e in episodes
                          if e.state == "firing" and e.alertname == alertname
                          and e.job in (None, _job(incident))
                          and incident.start <= e.start < incident.end + incident.tail]
                delay = min(starts) - incident.start if starts else None
                side = sorted({e.alertname for e in episodes
                               if e.state == "firing" and _belongs(e, incident, incident.allowed)
                               and e.alertname not in incident.expected})
                breaks = (_breaks(episodes, incident, alertname, min(starts), step)
                          if starts and alertname in incident.sustained else [])
                detections.append({"timeline": timeline.name, "incident": incident,
                                   "alertname": alertname, "delay": delay, "side": side,
                                   "breaks": breaks})
    normal_minutes = 0
    for timeline in scenarios.TIMELINES:
        covered: set[int] = set()
        for i in timeline.incidents:
            if not i.quiet:
                covered.update(range(i.start, min(timeline.minutes, i.end + i.tail)))
        normal_minutes += timeline.minutes - len(covered)
    # Per alert: the hours in which it had to stay silent (outside every incident window that
    # expects or allows it).
    silent: dict[str, float] = {}
    for alertname in {d["alertname"] for d in detections}:
        silent_minutes = 0
        for timeline in scenarios.TIMELINES:
            covered = set()
            for i in timeline.incidents:
                if alertname in i.expected + i.allowed:
                    covered.update(range(i.start, min(timeline.minutes, i.end + i.tail)))
            silent_minutes += timeline.minutes - len(covered)
        silent[alertname] = silent_minutes / 60
    detected = [d for d in detections if d["delay"] is not None]
    total = len(true_episodes) + len(false_episodes)
    return {
        "step": step,
        "detections": detections,
        "true": true_episodes,
        "false": false_episodes,
        "quiet_breaches": quiet_breaches,
        "breaks": [d for d in detections if d["breaks"]],
        "precision": len(true_episodes) / total if total else 1.0,
        "recall": len(detected) / len(detections) if detections else 1.0,
        "normal_hours": normal_minutes / 60,
        "quiet_hours": sum(i.end + i.tail - i.start for t in scenarios.TIMELINES
                           for i in t.incidents if i.quiet) / 60,
        "silent_hours": silent,
        "hours": sum(t.minutes for t in scenarios.TIMELINES) / 60,
    }


def evaluate(workdir: Path | None = None, steps: tuple[int, ...] = STEPS) -> dict[int, dict]:
    """Simulate every timeline and run promtool on each at the given intervals (in parallel)."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="alert-quality-"))
    procs, gaps = {}, {}
    for timeline in scenarios.TIMELINES:
        store = scenarios.simulate(timeline)
        gaps[timeline.name] = store.gaps
        for step in steps:
            path = tmp / f"{timeline.name}-{step}s.yml"
            path.write_text(scenarios.render(timeline, RULES, step, store))
            procs[(timeline.name, step)] = _start_promtool(path)
    outputs = {key: _finish_promtool(f"{key[0]} at {key[1]} s", proc)
               for key, proc in procs.items()}
    results = {}
    for step in steps:
        episodes = {name: parse(outputs[(name, s)], name, step, gaps[name])
                    for name, s in outputs if s == step}
        results[step] = score(episodes, step)
        results[step]["episodes"] = episodes
    if workdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} % ({part} / {whole})" if whole else "100.0 % (0 / 0)"


def delay_text(d: dict) -> str:
    return "**not detected**" if d["delay"] is None else f"{d['delay']:g} min"


def report(results: dict[int, dict]) -> str:
    """QUALITY.md (deterministic: the same rules and scenarios give the same text)."""
    minute, quarter = results[60], results[15]

    def row(label: str, value, target: str) -> str:
        return f"| {label} | {value(minute)} | {value(quarter)} | {target} |"

    lines = [
        "# Alert quality",
        "",
        "Generated by `python -m prometheus.tests.scenarios.quality` (checked by",
        "`tests/test_prometheus_rules.py`); do not edit by hand. Rules and scenarios:",
        f"`{fingerprint()}`.",
        "",
        "The scenario suite simulates "
        f"{minute['hours']:.0f} hours of scrapes of agent swarms with a daily load swing and "
        "random noise (Poisson task and query arrivals, log-normal durations, noisy gauges), "
        "injects incidents of every kind, and runs the real rule files over it with "
        "`promtool test rules`, once with scrapes and rule evaluations every minute and once "
        "every 15 seconds (the simulation's counters then rise evenly within each minute). "
        f"{minute['normal_hours']:.1f} of those hours are outside every incident and its "
        "recovery tail; each alert must also stay silent during the incidents that do not "
        f"concern it, at least {min(minute['silent_hours'].values()):.1f} hours per alert "
        f"(last column below). {minute['quiet_hours']:.1f} hours follow healthy events that "
        "must raise nothing, not even a pending alert (the z-score anomaly alerts excepted: their "
        "false alarms are a statistical rate, counted in the precision): fresh starts, a "
        "Prometheus restart "
        "(5 minutes without samples), exporter restarts (every series gone until its next "
        "event), a new agent.",
        "",
        "| measure | 1 m | 15 s | target |",
        "| --- | --- | --- | --- |",
        row("precision (true firing episodes / all firing episodes)",
            lambda r: _pct(len(r["true"]), len(r["true"]) + len(r["false"])), ">= 95 %"),
        row("recall (expected alerts that fired in their incident)",
            lambda r: _pct(sum(d["delay"] is not None for d in r["detections"]),
                           len(r["detections"])), ">= 95 %"),
        row("false firing episodes in normal hours or in unrelated incidents (listed below)",
            lambda r: len(r["false"]), "-"),
        row("alerts pending or firing after a fresh start, a restart or a new agent",
            lambda r: len(r["quiet_breaches"]), "0"),
        row("breaks in the alerts of the stalls (they must fire until the stall ends)",
            lambda r: len(r["breaks"]), "0"),
        "",
        "Watchdog always fires by design and AgentPerformanceRanking whenever an agent finished "
        "a task (it carries seed 000's ranking, not a fault): both are left out. An episode is one label set in one "
        "state for consecutive evaluations; consequences an incident may legitimately trigger "
        "(for example the anomaly alert after a stall ends) are listed per incident as "
        "*allowed* and count as true. Delays run from the first minute of the injected fault "
        "to the first evaluation at which the alert is firing (so they include the rule's "
        "`for` and its window), at each evaluation interval.",
        "",
        "## Detection delay per alert",
        "",
        "| alert | incident (timeline, start) | injected fault | delay at 1 m | delay at 15 s "
        "| also fired (allowed) | hours it had to stay silent |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    fifteen = {(d["timeline"], d["incident"].name, d["alertname"]): d
               for d in quarter["detections"]}
    for d in sorted(minute["detections"], key=lambda d: (d["alertname"], d["timeline"],
                                                          d["incident"].start)):
        i = d["incident"]
        q = fifteen[(d["timeline"], i.name, d["alertname"])]
        side = sorted(set(d["side"]) | set(q["side"]))
        lines.append(f"| {d['alertname']} | {i.name} ({d['timeline']}, "
                     f"{i.start // 60:02d}:{i.start % 60:02d}) | {FAULTS.get(i.kind, i.kind)} | "
                     f"{delay_text(d)} | {delay_text(q)} | {', '.join(side) or '-'} | "
                     f"{minute['silent_hours'][d['alertname']]:.1f} |")
    for title, key, describe in (
            ("False firing episodes", "false", lambda e: f"{e.timeline}: {e.describe()}"),
            ("Alerts raised by healthy events", "quiet_breaches",
             lambda e: f"{e.timeline}: {e.describe()}"),
            ("Breaks in sustained alerts", "breaks",
             lambda d: f"{d['timeline']}: {d['alertname']} in {d['incident'].name} not "
                       f"firing at {', '.join(d['breaks'][:10])}")):
        lines += ["", f"## {title}", ""]
        items = [f"- {r} s: {describe(x)}" for r in STEPS for x in results[r][key]]
        lines += items or ["None."]
    lines += ["", "## Timelines", ""]
    for t in scenarios.TIMELINES:
        lines.append(f"- **{t.name}** ({t.minutes // 60} h, seed {t.seed}): {t.description}")
    lines.append("")
    return "\n".join(lines)


FAULTS = {
    "healthy": "nothing",
    "gpu_overheat": "GPU 1 at ~87 °C",
    "gpu_critical": "GPU 1 at ~93 °C",
    "gpu_leak": "GPU 0 memory +350 MB/min",
    "gpu_mem_exhaustion": "GPU 0 memory at 97 %",
    "gpu_underutilized": "GPUs ~12 % busy while training",
    "critical_errors": "critical errors while GPU 1 is at ~87 °C",
    "reported_gpu_hot": "Redis-reported GPU at ~92 °C",
    "reported_gpu_leak": "Redis-reported GPU memory +300 MB/min",
    "reported_gpu_idle": "Redis-reported GPU ~10 % busy while training",
    "new_project_high_loss": "new project starting at loss 8",
    "loss_diverging": "loss grows x e per 12 min",
    "loss_converged": "epoch loss flat within 0.1 %",
    "loss_near_zero": "new project at loss 0.005",
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
    "tasks_stalled": "no task completes; agents report",
    "task_slowdown": "task durations x2",
    "sla_breach": "25 % of tasks stuck > 30 min",
    "medium_burn": "9 % of tasks over SLA",
    "slow_burn": "4.5 % of tasks over SLA",
    "workflow_slow": "index step 900 s, 2/min",
    "nightly_slow": "new step, one run at a time, 700 s each",
    "redis_down": "exporter loses Redis 20 min",
    "source_stalled": "a source loses an ACL permission 20 min",
    "exporter_down": "exporter unreachable 30 min, restarts",
    "exporter_restart": "exporter restarts between two scrapes",
    "prometheus_restart": "Prometheus down 5 min",
    "new_agent": "agent a7 joins",
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
    parser.add_argument("--quick", action="store_true",
                        help="the 1-minute interval only; print the result, write nothing")
    args = parser.parse_args(argv)
    workdir = None
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
    results = evaluate(workdir, (60,) if args.quick else STEPS)
    for step, result in results.items():
        print(f"{step} s: precision {100 * result['precision']:.1f} %  "
              f"recall {100 * result['recall']:.1f} %")
        for e in result["false"]:
            print("  false:", e.timeline, e.describe())
        for e in result["quiet_breaches"]:
            print("  raised by a healthy event:", e.timeline, e.describe())
        for d in result["breaks"]:
            print("  break:", d["timeline"], d["alertname"], d["breaks"][:10])
        for d in result["detections"]:
            if d["delay"] is None:
                print("  missed:", d["timeline"], d["incident"].name, d["alertname"])
    if args.quick:
        return 0
    text = report(results)
    if args.check:
        current = REPORT.read_text() if REPORT.exists() else ""
        if current != text:
            print(f"{REPORT} is out of date; run python -m prometheus.tests.scenarios.quality",
                  file=sys.stderr)
            return 1
        return 0
    REPORT.write_text(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
