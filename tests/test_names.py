"""The names a scrape exposes: one holder per name, whoever comes first; and the name rules match
what promtool says."""
from __future__ import annotations

import pytest

from exporter.names import Names
from exporter.validation import name_problem, sample_names


def test_families_that_would_expose_one_name_cannot_both_hold_it():
    names = Names()
    assert names.claim("x", "histogram", "built-in") is None
    problem = names.claim("x_count", "gauge", "events:metrics")
    assert problem == "x_count (gauge) would expose x_count, which the built-in histogram x exposes"
    assert names.claim("x", "gauge", "key checks") is not None  # OpenMetrics' family name
    assert names.claim("x_bucket_total", "counter", "events:metrics") is not None  # x_bucket
    assert names.claim("x_buckets_total", "counter", "events:metrics") is None
    assert names.claim("y", "gauge", "events:metrics") is None
    assert names.claim("y_total", "counter", "events:metrics") is not None  # OpenMetrics: y
    assert names.claim("y", "gauge", "events:metrics") is None  # its holder again: fine


def test_a_released_name_can_be_claimed_by_another_family():
    names = Names()
    assert names.claim("queue_depth", "gauge", "key checks") is None
    names.release("queue_depth", "gauge", "events:metrics")  # not its holder: nothing happens
    assert names.claim("queue_depth", "gauge", "events:metrics") is not None
    names.release("queue_depth", "gauge", "key checks")
    assert names.claim("queue_depth", "gauge", "events:metrics") is None


def test_replace_swaps_a_sources_names_at_once_or_not_at_all():
    names = Names()
    assert names.claim("agent_busy", "gauge", "built-in") is None
    assert names.replace("key checks", [("old_a", "gauge"), ("old_b", "gauge")]) is None
    assert names.replace("key checks", [("new_a", "gauge"), ("agent_busy", "gauge")]) is not None
    assert names.claim("old_a", "gauge", "events:metrics") is not None, "a refusal changed nothing"
    assert names.replace("key checks", [("dup", "gauge"), ("dup_total", "counter")]) is not None
    assert names.replace("key checks", [("new_a", "gauge")]) is None
    assert names.claim("old_a", "gauge", "events:metrics") is None, "the old names were released"
    assert names.claim("new_a", "gauge", "events:metrics") is not None


def test_sample_names_cover_both_formats():
    assert sample_names("jobs_total", "counter") == ("jobs", "jobs_total", "jobs_created")
    assert sample_names("wait_seconds", "histogram") == (
        "wait_seconds", "wait_seconds_bucket", "wait_seconds_count", "wait_seconds_sum",
        "wait_seconds_created")
    assert sample_names("python", "info") == ("python", "python_info")


# (name, kind): the name rules must flag exactly what promtool flags.
NAMES = [
    ("plain_ratio", "gauge"), ("jobs_total", "counter"), ("wait_seconds", "histogram"),
    ("gauge_ends_total", "gauge"), ("counter_without_suffix", "counter"),
    ("size_bucket", "gauge"), ("size_count", "gauge"), ("size_sum", "gauge"),
    ("histo_total", "histogram"), ("fooBar", "gauge"), ("request_ms", "gauge"),
    ("disk_mb_free", "gauge"), ("uptime_s", "gauge"), ("latency_milliseconds", "gauge"),
    ("payload_kilobytes", "gauge"), ("runtime_hours_total", "counter"),
    ("queue_gauge", "gauge"), ("events_counter_total", "counter"), ("wait_histogram", "histogram"),
    ("cpu_utilization_percent", "gauge"), ("load_average_1m", "gauge"),
    ("memory_used_bytes", "gauge"), ("temperature_celsius", "gauge"), ("ms_first_word", "gauge"),
    ("gpu_power_watts", "gauge"), ("swarm_total_agents", "gauge"), ("rag_cache_size", "gauge"),
]


def exposition(entries: list[tuple[str, str]]) -> str:
    lines = []
    for name, kind in entries:
        lines += [f"# HELP {name} Help.", f"# TYPE {name} {kind}"]
        if kind == "histogram":
            lines += [f'{name}_bucket{{le="1"}} 1', f'{name}_bucket{{le="+Inf"}} 1',
                      f"{name}_sum 1", f"{name}_count 1"]
        else:
            lines.append(f"{name} 1")
    return "\n".join(lines) + "\n"


@pytest.mark.integration
def test_name_rules_flag_exactly_what_promtool_flags():
    from tests.support.exposition import promtool_problems

    said = promtool_problems(exposition(NAMES))
    flagged = {line.split()[0] for line in said.splitlines() if line.strip()}
    ours = {name for name, kind in NAMES if name_problem(name, kind)}
    assert ours == flagged, said
