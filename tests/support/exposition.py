"""A scrape checked the ways its readers read it: prometheus-client's text parser, its OpenMetrics
parser, and `promtool check metrics` (Prometheus' own parser plus its naming lint)."""
from __future__ import annotations

import subprocess

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.support.procs import require_binary

OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


def promtool_problems(text: str) -> str:
    """What `promtool check metrics` says about an exposition: "" when it is clean."""
    result = subprocess.run([require_binary("promtool"), "check", "metrics"], input=text,
                            text=True, capture_output=True, timeout=60)
    said = result.stdout + result.stderr
    return said or ("" if result.returncode == 0 else f"exit status {result.returncode}")


def checked_scrape(url: str) -> str:
    """Scrape `url`/metrics as text and as OpenMetrics; fail unless every reader accepts both.
    Returns the text exposition."""
    text = requests.get(url + "/metrics", timeout=30).text
    openmetrics = requests.get(url + "/metrics", headers=OPENMETRICS, timeout=30).text
    try:
        list(parse_text(text))
    except ValueError as exc:
        raise AssertionError(f"text parser: {exc}\n{text}") from None
    try:
        list(parse_om(openmetrics))
    except ValueError as exc:
        raise AssertionError(f"OpenMetrics parser: {exc}\n{openmetrics}") from None
    problems = promtool_problems(text)
    assert problems == "", f"promtool check metrics: {problems}\n{text}"
    return text
