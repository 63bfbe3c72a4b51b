"""./bench/run [--quick] [NAME ...]: run the benchmarks, print a table per benchmark and write
bench/results/<name>.json (machine, versions, load average, medians, ratios, every run)."""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import orjson

from . import batches, checkpoint, dashboards, domains, group, ingest, latency, render, replication, resources
from .common import RESULTS, Result, environment, fmt, table

BENCHMARKS: dict[str, Callable[[Path, bool], Result]] = {
    "ingest": ingest.run,
    "latency": latency.run,
    "render": render.run,
    "resources": resources.run,
    "dashboards": dashboards.run,
    "checkpoint": checkpoint.run,
    "domains": domains.run,
    "replication": replication.run,
    "group": group.run,
    "batches": batches.run,
}


def report(result: Result, env: dict, seconds: float) -> None:
    print(f"\n## {result.title}\n")
    print(table(result.columns, result.rows))
    for note in result.notes:
        print(f"\n{note}")
    if result.targets:
        print()
    for target in result.targets:
        print(f"- {'met   ' if target.met else 'MISSED'} {target.text}: "
              f"{fmt(target.value)} {target.unit} (limit {fmt(target.limit)})")
    print(f"\n({seconds:.0f} s; load average at start {env['load_average_start'][0]:.2f}, "
          f"at end {env['load_average_end'][0]:.2f})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a couple of minutes")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = environment()
    machine, versions = env["machine"], env["versions"]
    print(f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"Python {versions['python']}, {versions['redis-server']}, {versions['prometheus']}; "
          f"agent-exporter {versions['agent-exporter']} at {env['git']}", flush=True)
    failed = 0
    for name in args.names or BENCHMARKS:
        env = environment()
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        start = time.monotonic()
        try:
            result = BENCHMARKS[name](workdir, args.quick)
        except Exception:
            traceback.print_exc()
            print(f"benchmark {name} failed; its processes' logs are in {workdir}")
            failed += 1
            continue
        seconds = time.monotonic() - start
        env["load_average_end"] = os.getloadavg()
        report(result, env, seconds)
        document = {**env, "quick": args.quick, "seconds": round(seconds, 1), **result.as_dict()}
        (RESULTS / f"{name}.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
