"""LLM calls (`events:llm:calls`): OpenTelemetry GenAI metrics, cost from the event or the price
table, unpriced calls counted, budgets exported and reloaded; in process, then through the real
CLI and redis-server."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import yaml

from exporter import thresholds
from exporter.domains.llm_settings import LlmSettings, parse_llm
from exporter.publisher import Publisher
from exporter.validation import ConfigError
from tests.support.ingest import Ingest
from tests.support.procs import REPO, require_binary, value, wait_until

CHANNEL = "events:llm:calls"
PRICES = {"prices": {"gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25},
                     "gpt-4o-2024-08-06": {"input": 5, "output": 15},
                     "claude-sonnet-4": {"input": 3, "output": 15}}}
CALL = {"agent": "planner", "provider": "openai", "model": "gpt-4o", "operation": "chat",
        "input_tokens": 1200, "output_tokens": 300, "cached_input_tokens": 400,
        "duration_seconds": 3.2, "time_to_first_token_seconds": 0.45, "status": "ok"}
MODEL = dict(agent="planner", gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o")
OPERATION = dict(MODEL, gen_ai_operation_name="chat")


def settings(**section) -> LlmSettings:
    return parse_llm(section, "llm", "test")


def ingest(**section) -> Ingest:
    return Ingest(llm=settings(**section))


def cost(samples: dict, **labels: str) -> float | None:
    return value(samples, "agent_llm_cost_usd_total", **{**MODEL, **labels})


def test_a_call_becomes_the_otel_genai_metrics():
    run = ingest(**PRICES)
    run.send(CHANNEL, CALL)
    s = run.samples()
    input_tokens = dict(OPERATION, gen_ai_token_type="input")
    assert value(s, "gen_ai_client_token_usage_sum", **input_tokens) == 1200  # cached included
    assert value(s, "gen_ai_client_token_usage_bucket", **input_tokens, le="1024.0") == 0
    assert value(s, "gen_ai_client_token_usage_bucket", **input_tokens, le="4096.0") == 1
    assert value(s, "gen_ai_client_token_usage_sum", **OPERATION, gen_ai_token_type="output") == 300
    # A successful call has no error_type: the empty label is left out, as Prometheus reads it.
    assert value(s, "gen_ai_client_operation_duration_seconds_bucket", **OPERATION,
                 le="5.12") == 1
    assert value(s, "gen_ai_client_operation_duration_seconds_bucket", **OPERATION,
                 le="2.56") == 0
    assert value(s, "gen_ai_server_time_to_first_token_seconds_sum", **OPERATION) == 0.45
    assert value(s, "agent_llm_requests_total", **MODEL, outcome="ok") == 1
    assert value(s, "agent_llm_cache_read_input_tokens_total", **MODEL) == 400
    # 800 uncached input at 2.50, 400 cached at 1.25, 300 output at 10 USD per million
    assert cost(s) == pytest.approx((800 * 2.5 + 400 * 1.25 + 300 * 10) / 1e6)
    assert value(s, "agent_llm_unpriced_requests_total", **MODEL) is None


def test_snake_and_camel_case_fields_are_the_same_call():
    camel = {"agent": "a", "provider": "anthropic", "model": "claude-sonnet-4", "operation": "chat",
             "inputTokens": 100, "outputTokens": 20, "cachedInputTokens": 50,
             "durationSeconds": 1.0, "timeToFirstTokenSeconds": 0.2, "status": "ok",
             "costUsd": 0.01}
    snake = {"agent": "a", "provider": "anthropic", "model": "claude-sonnet-4", "operation": "chat",
             "input_tokens": 100, "output_tokens": 20, "cached_input_tokens": 50,
             "duration_seconds": 1.0, "time_to_first_token_seconds": 0.2, "status": "ok",
             "cost_usd": 0.01}
    one, other = ingest(), ingest()
    one.send(CHANNEL, camel)
    other.send(CHANNEL, snake)
    assert one.text() == other.text()
    assert "agent_llm_cost_usd_total" in one.text()


def test_cost_from_the_event_wins_and_the_response_model_picks_the_price():
    run = ingest(**PRICES)
    run.send(CHANNEL, {**CALL, "cost_usd": 0.5})
    assert cost(run.samples()) == 0.5
    run.send(CHANNEL, {**CALL, "responseModel": "gpt-4o-2024-08-06"})  # no cached price: input's
    assert cost(run.samples()) == pytest.approx(0.5 + (1200 * 5 + 300 * 15) / 1e6)
    run.send(CHANNEL, {**CALL, "responseModel": "gpt-4o-unknown-snapshot"})  # falls back
    assert cost(run.samples()) == pytest.approx(0.5 + 0.0105 + 0.0055)


def test_a_model_without_a_price_is_counted_never_priced_at_zero():
    run = ingest(**PRICES)
    run.send(CHANNEL, {**CALL, "model": "o3-pro"})
    s = run.samples()
    assert value(s, "agent_llm_unpriced_requests_total", **{**MODEL,
                                                             "gen_ai_request_model": "o3-pro"}) == 1
    assert not [k for k in s if k[0] == "agent_llm_cost_usd_total"]
    assert value(s, "agent_llm_requests_total", **{**MODEL, "gen_ai_request_model": "o3-pro"},
                 outcome="ok") == 1


def test_a_failed_call_counts_its_error_type_and_needs_no_tokens():
    run = ingest(**PRICES)
    failed = {k: v for k, v in CALL.items() if "token" not in k}
    run.send(CHANNEL, {**failed, "status": "error", "error_type": "429", "duration_seconds": 0.2})
    run.send(CHANNEL, {**failed, "status": "error", "duration_seconds": 0.2})
    s = run.samples()
    assert value(s, "agent_llm_requests_total", **MODEL, outcome="error") == 2
    assert value(s, "gen_ai_client_operation_duration_seconds_count", **OPERATION,
                 error_type="429") == 1
    assert value(s, "gen_ai_client_operation_duration_seconds_count", **OPERATION,
                 error_type="_OTHER") == 1
    assert not [k for k in s if k[0].startswith(("gen_ai_client_token_usage",
                                                  "gen_ai_server_time_to_first_token"))]
    assert cost(s) is None  # no tokens, no cost: nothing to price, nor unpriced
    assert value(s, "agent_llm_unpriced_requests_total", **MODEL) is None
    run.send(CHANNEL, {**failed, "status": "error", "duration_seconds": 0.2, "input_tokens": 800})
    assert cost(run.samples()) == pytest.approx(800 * 2.5 / 1e6)  # a billed failure is priced


@pytest.mark.parametrize("change, reason", [
    ({"agent": None}, "missing_field"),
    ({"operation": None}, "missing_field"),
    ({"status": "done"}, "bad_value"),
    ({"input_tokens": None}, "missing_field"),
    ({"output_tokens": 12.5}, "bad_type"),
    ({"input_tokens": -1}, "negative"),
    ({"cached_input_tokens": 1201}, "out_of_range"),
    ({"time_to_first_token_seconds": 3.3}, "out_of_range"),
    ({"duration_seconds": None}, "missing_field"),
    ({"cost_usd": -0.01}, "negative"),
    ({"cost_usd": "0.01"}, "bad_type"),
    ({"model": "m" * 129}, "label_too_long"),
    ({"status": "error", "error_type": "e" * 129}, "label_too_long"),
])
def test_a_bad_call_is_dropped_whole_and_counted(change, reason):
    run = ingest(**PRICES)
    event = {k: v for k, v in {**CALL, **change}.items() if v is not None}
    run.send(CHANNEL, event)
    s = run.samples()
    assert value(s, "agent_exporter_events_invalid_total", source=CHANNEL, reason=reason) == 1
    assert run.series() == {}, "nothing of a rejected call may be applied"


def test_labels_are_bounded_by_the_series_budget():
    run = Ingest(llm=settings(), series_budgets={"agent_llm_requests_total": 3})
    for n in range(5):
        run.send(CHANNEL, {**CALL, "model": f"model-{n}"})
    s = run.samples()
    overflow = dict(agent="__overflow__", gen_ai_provider_name="__overflow__",
                    gen_ai_request_model="__overflow__", outcome="__overflow__")
    assert value(s, "agent_llm_requests_total", **overflow) == 2
    assert value(s, "agent_exporter_series_overflow_total", metric="agent_llm_requests_total") == 2


def test_budgets_are_exported_and_a_reload_changes_prices_and_budgets():
    run = ingest(**PRICES, daily_budget_usd={"swarm": 200, "each_agent": 20,
                                             "agents": {"planner": 50}})
    s = run.samples()  # from the config, before any call
    assert value(s, "agent_llm_daily_budget_usd", agent="planner") == 50
    assert value(s, "agent_llm_each_agent_daily_budget_usd") == 20
    assert value(s, "agent_llm_swarm_daily_budget_usd") == 200
    run.send(CHANNEL, CALL)
    before = cost(run.samples())

    run.domains["llm"].reload(settings(prices={"gpt-4o": {"input": 0, "output": 100}},
                                       daily_budget_usd={"agents": {"coder": 5}}))
    s = run.samples()
    assert value(s, "agent_llm_daily_budget_usd", agent="coder") == 5
    assert value(s, "agent_llm_daily_budget_usd", agent="planner") is None  # no budget now
    assert value(s, "agent_llm_each_agent_daily_budget_usd") is None
    assert value(s, "agent_llm_swarm_daily_budget_usd") is None
    assert cost(s) == before  # spent money stays spent
    run.send(CHANNEL, CALL)
    assert cost(run.samples()) == pytest.approx(before + 300 * 100 / 1e6)


@pytest.mark.parametrize("section, key", [
    ({"price": {}}, "llm.price: unknown key"),
    ({"prices": {"gpt-4o": {"input": 2.5}}}, "llm.prices.gpt-4o.output: required"),
    ({"prices": {"gpt-4o": {"input": -1, "output": 1}}}, "llm.prices.gpt-4o.input: must be at least 0"),
    ({"prices": {"gpt-4o": {"input": 1, "output": 1, "cache": 1}}}, "llm.prices.gpt-4o.cache: unknown key"),
    ({"prices": ["gpt-4o"]}, "llm.prices: expected a mapping"),
    ({"daily_budget_usd": {"swarm": 0}}, "llm.daily_budget_usd.swarm: must be greater than 0"),
    ({"daily_budget_usd": {"agents": {"a": "lots"}}}, "llm.daily_budget_usd.agents.a: expected"),
    ({"daily_budget_usd": {"per_agent": 5}}, "llm.daily_budget_usd.per_agent: unknown key"),
])
def test_a_bad_llm_section_names_the_key(section, key):
    with pytest.raises(ConfigError) as caught:
        parse_llm(section, "llm", "config file x.yml")
    assert key in str(caught.value)


def test_the_example_configs_price_every_model_the_demo_calls():
    from exporter.demo.llm import LLM_MODELS

    for name in ("agent-exporter.yml", "exporter-in-compose.yml"):
        section = yaml.safe_load((REPO / "examples" / name).read_text())["llm"]
        prices = parse_llm(section, "llm", name).prices
        for model in LLM_MODELS:
            assert prices.get(model.name) == model.price, (name, model.name)


def test_alert_thresholds_are_the_constants():
    rules = yaml.safe_load((REPO / "prometheus" / "rules" / "llm.alerts.yml").read_text())
    expected = {"LlmAgentSpendOverBudget": thresholds.LLM_BUDGET_BURN_RATE,
                "LlmSwarmSpendOverBudget": thresholds.LLM_BUDGET_BURN_RATE,
                "LlmProviderErrorRatioHigh": thresholds.LLM_PROVIDER_ERROR_RATIO_HIGH,
                "LlmRateLimited": thresholds.LLM_RATE_LIMITED_RATIO_HIGH,
                "LlmLatencyHigh": thresholds.LLM_LATENCY_P95_SECONDS,
                "LlmTimeToFirstTokenHigh": thresholds.LLM_TIME_TO_FIRST_TOKEN_P95_SECONDS}
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert set(alerts) == set(expected)
    for name, threshold in expected.items():
        rule = alerts[name]
        assert float(rule["annotations"]["threshold"]) == threshold, name
        assert f"> {threshold:g}\n" in rule["expr"], name
        if "rate5m >= " in rule["expr"]:
            assert f">= {thresholds.LLM_MIN_CALLS_PER_SECOND:g}" in rule["expr"], name


# -- end to end: the real CLI and redis-server ---------------------------------------------------

NO_COLLECTORS = ("--no-collector.host", "--no-collector.gpu", "--no-collector.redis_state")


def publish_cli(redis_url: str, *fields: str) -> None:
    done = subprocess.run([sys.executable, "-m", "exporter", "publish", "--redis-url", redis_url,
                           "llm", *fields], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_published_calls_become_metrics_and_sighup_changes_prices(redis_url, start_exporter):
    config = yaml.safe_dump({"llm": {**PRICES, "daily_budget_usd": {
        "swarm": 100, "each_agent": 10, "agents": {"planner": 20}}}})
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=config)
    events = Publisher(redis_url)
    events.llm_call("planner", "openai", "gpt-4o", "chat", 3.2, input_tokens=1200,
                    output_tokens=300, cached_input_tokens=400, time_to_first_token_seconds=0.45)
    events.llm_call("planner", "openai", "gpt-4o", "chat", 1.0, input_tokens=10, output_tokens=5,
                    cost_usd=0.25)
    publish_cli(redis_url, "agent=planner", "provider=openai", "model=o3-pro", "operation=chat",
                "duration_seconds=12.5", "input_tokens=50", "output_tokens=900")
    publish_cli(redis_url, "agent=planner", "provider=openai", "model=gpt-4o", "operation=chat",
                "duration_seconds=0.3", "status=error", "errorType=429")

    def calls() -> float:
        s = exporter.samples()
        return sum(v for (name, _), v in s.items() if name == "agent_llm_requests_total")

    wait_until(lambda: calls() == 4, message="four calls counted")
    s = exporter.samples()
    first = (800 * 2.5 + 400 * 1.25 + 300 * 10) / 1e6
    assert cost(s) == pytest.approx(first + 0.25)
    o3 = {**MODEL, "gen_ai_request_model": "o3-pro"}
    assert value(s, "agent_llm_unpriced_requests_total", **o3) == 1
    assert value(s, "agent_llm_requests_total", **MODEL, outcome="error") == 1
    assert value(s, "gen_ai_client_operation_duration_seconds_count", **OPERATION,
                 error_type="429") == 1
    assert value(s, "agent_llm_daily_budget_usd", agent="planner") == 20
    assert value(s, "agent_llm_each_agent_daily_budget_usd") == 10
    assert value(s, "agent_llm_swarm_daily_budget_usd") == 100
    assert value(s, "agent_exporter_events_total", source=CHANNEL, type="llm") == 4

    result = subprocess.run([require_binary("promtool"), "check", "metrics"],
                            input=exporter.scrape(), text=True, capture_output=True, timeout=30)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout

    config_path = next(arg for arg in exporter.proc.argv if arg.endswith(".yml"))
    with open(config_path, "w") as handle:
        handle.write(yaml.safe_dump({"llm": {
            "prices": {"gpt-4o": {"input": 10, "output": 40}, "o3-pro": {"input": 20, "output": 80}},
            "daily_budget_usd": {"swarm": 300, "each_agent": 30}}}))
    exporter.proc.signal(signal.SIGHUP)
    wait_until(lambda: value(exporter.samples(), "agent_llm_swarm_daily_budget_usd") == 300,
               message="the reloaded budget")
    s = exporter.samples()
    assert value(s, "agent_llm_each_agent_daily_budget_usd") == 30
    assert value(s, "agent_llm_daily_budget_usd", agent="planner") is None
    events.llm_call("planner", "openai", "gpt-4o", "chat", 2.0, input_tokens=1000,
                    output_tokens=100)
    events.llm_call("planner", "openai", "o3-pro", "chat", 2.0, input_tokens=1000,
                    output_tokens=100)
    wait_until(lambda: calls() == 6, message="the calls after the reload")
    s = exporter.samples()
    assert cost(s) == pytest.approx(first + 0.25 + (1000 * 10 + 100 * 40) / 1e6)
    assert value(s, "agent_llm_cost_usd_total", **o3) == pytest.approx((1000 * 20 + 100 * 80) / 1e6)
    assert value(s, "agent_llm_unpriced_requests_total", **o3) == 1  # the earlier call stays


def test_cli_publish_rejects_an_unknown_field(redis_url):
    done = subprocess.run([sys.executable, "-m", "exporter", "publish", "--redis-url", redis_url,
                           "llm", "agent=a", "provider=openai", "model=m", "operation=chat",
                           "duration_seconds=1", "temperature=0.2"],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "temperature" in done.stderr
