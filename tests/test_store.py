"""The metric store: exposition that parsers accept, budgets, expiry and checkpoints."""
from __future__ import annotations

import math
import threading

import orjson
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.store import OVERFLOW, Refused, Store
from tests.support.procs import wait_until


def make_store(**kwargs) -> Store:
    store = Store(**kwargs)
    counter = store.family("jobs_total", "counter", "Jobs.", ["agent", "status"])
    gauge = store.family("temp_celsius", "gauge", 'Temp with "quotes" \\ and\nnewline.', ["room"])
    hist = store.family("wait_seconds", "histogram", "Waits.", ["queue"], [0.1, 1, 10])
    with store.lock:
        counter.inc(("a", "done"))
        counter.inc(("a", "done"), 2)
        counter.inc(('we"ird\\', "fail\n"))
        gauge.set(("lab",), -3.5)
        for v in (0.05, 0.1, 0.5, 20):
            hist.observe(("q",), v)
    return store


def test_text_exposition_parses_with_the_values_applied():
    families = {f.name: f for f in parse_text("".join(make_store().render()))}
    jobs = {tuple(sorted(s.labels.items())): s.value for s in families["jobs"].samples}
    assert jobs[(("agent", "a"), ("status", "done"))] == 3
    assert jobs[(("agent", 'we"ird\\'), ("status", "fail\n"))] == 1
    assert families["temp_celsius"].documentation == 'Temp with "quotes" \\ and\nnewline.'
    assert families["temp_celsius"].samples[0].value == -3.5
    buckets = {s.labels["le"]: s.value for s in families["wait_seconds"].samples
               if s.name.endswith("_bucket")}
    # le is inclusive: 0.1 lands in the 0.1 bucket
    assert buckets == {"0.1": 2, "1.0": 3, "10.0": 3, "+Inf": 4}
    sums = {s.name: s.value for s in families["wait_seconds"].samples}
    assert sums["wait_seconds_count"] == 4 and math.isclose(sums["wait_seconds_sum"], 20.65)


def test_openmetrics_exposition_parses():
    text = "".join(make_store().render(openmetrics=True)) + "# EOF\n"
    families = {f.name: f for f in parse_om(text)}
    assert families["jobs"].type == "counter"
    assert {s.name for s in families["jobs"].samples} == {"jobs_total"}
    assert families["wait_seconds"].type == "histogram"


def test_budget_folds_new_label_sets_into_overflow_and_counts_them():
    store = Store(default_budget=3)
    family = store.family("agent_busy", "gauge", "Busy.", ["agent"])
    with store.lock:
        for i in range(10):
            family.set((f"agent-{i}",), 1)
        family.set(("agent-0",), 0)  # an existing series still updates
    assert len(family.series) == 4  # 3 within budget + the overflow series
    assert family.series[("agent-0",)].value == 0
    assert family.series[(OVERFLOW,)].value == 1
    assert store.families["agent_exporter_series_overflow_total"].series[("agent_busy",)].value == 7


def test_stale_series_expire_and_are_counted():
    store = Store(gauge_ttl=60, counter_ttl=60)
    family = store.family("agent_busy", "gauge", "Busy.", ["agent"])
    with store.lock:
        store.clock.now = 1000.0
        family.set(("old",), 1)
        store.clock.now = 1100.0
        family.set(("new",), 1)
    store.expire(now=1100.0)
    assert set(family.series) == {("new",)}
    assert store.families["agent_exporter_series_expired_total"].series[("agent_busy",)].value == 1


def test_checkpoint_round_trip_restores_every_value():
    original = make_store()
    with original.lock:
        snapshot = original.dump()
    restored = make_store()
    for family in restored.families.values():
        family.series.clear()
    restored.load(snapshot)
    assert "".join(restored.render()) == "".join(original.render())


@pytest.mark.parametrize("name, kind, labels, reason", [
    ("h_seconds", "histogram", ["le"], "bad_label_name"),
    ("g", "gauge", ["le"], "bad_label_name"),
    ("g", "gauge", ["quantile"], "bad_label_name"),
    ("c_total", "counter", ["__name"], "bad_label_name"),
    ("g", "gauge", ["agentId"], "bad_label_name"),
    ("g", "gauge", ["a", "a"], "duplicate_label"),
    ("g", "gauge", [f"l{i}" for i in range(5)], "too_many_labels"),
    ("g_total", "gauge", [], "bad_metric_name"),
    ("g_count", "gauge", [], "bad_metric_name"),
    ("c", "counter", [], "bad_metric_name"),
])
def test_a_family_the_exposition_cannot_hold_is_refused(name, kind, labels, reason):
    store = Store(max_labels=4)
    with pytest.raises(Refused) as refused:
        store.family(name, kind, "Help.", labels, [1.0] if kind == "histogram" else None)
    assert refused.value.reason == reason
    assert name not in store.families


def test_a_family_whose_names_another_exposes_is_refused_whoever_made_it():
    store = Store()
    store.family("wait_seconds", "histogram", "Waits.", [], [1.0])
    for name, kind in (("wait_seconds_count_total", "counter"), ("wait_seconds_bucket", "histogram"),
                       ("wait_seconds", "gauge")):
        with pytest.raises(Refused) as refused:
            store.family(name, kind, "Help.", [], [1.0], source="events:metrics")
        assert refused.value.reason == "metric_name_collision", name
    store.names.claim("queue_depth", "gauge", "key checks")
    with pytest.raises(Refused, match="key checks gauge queue_depth"):
        store.family("queue_depth", "gauge", "Help.", source="events:metrics")
    text = "".join(store.render(openmetrics=True)) + "# EOF\n"
    assert [f.name for f in parse_om(text)] == [], "nothing refused is exposed"


def test_an_empty_label_value_is_left_out_of_the_text():
    store = Store()
    family = store.family("records", "gauge", "Records.", ["hostname", "component"])
    with store.lock:
        family.set(("", "swarm"), 1)
    assert 'records{component="swarm"} 1.0\n' in "".join(store.render())


def test_a_scrape_takes_the_lock_while_a_large_batch_is_being_applied():
    """The ingest loop gives way to a waiting reader every few events: the reader gets the lock
    while the batch is still being applied, not after it."""
    from tests.support.ingest import Ingest

    ingest = Ingest()
    batch = orjson.dumps([{"agent": f"a{i % 50}", "status": "done"} for i in range(1500)])
    total = 200 * 1500
    worker = threading.Thread(target=ingest.dispatcher.dispatch_many,
                              args=("events:tasks:updates", "events:tasks:updates", [batch] * 200))
    worker.start()
    wait_until(ingest.store.lock.locked, message="the batch to hold the lock")
    with ingest.store.priority():
        seen = sum(s.value for s in ingest.store.families["agent_tasks_total"].series.values())
    worker.join()
    applied = sum(s.value for s in ingest.store.families["agent_tasks_total"].series.values())
    assert applied == total
    assert seen < total, "the reader waited for the whole batch"
