"""The exposition of a fixed event corpus, byte for byte (after node_exporter's e2e fixture).

Any change to a metric's name, help, type, labels, buckets or formatting shows up here as a diff
to review. After an intended change: `pytest tests/test_golden.py --update-golden`.
"""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from exporter import store
from tests.support.ingest import Ingest

FIXTURES = Path(__file__).parent / "fixtures" / "golden"
NOW = 1_764_633_600.0  # the exporter's clock during the corpus: timestamps stay fixed


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_corpus_exposition_matches_the_golden_file(fmt, monkeypatch, request):
    monkeypatch.setattr(store.time, "time", lambda: NOW)
    ingest = Ingest()
    for channel, event in orjson.loads((FIXTURES / "corpus.json").read_bytes()):
        ingest.send(channel, event)
    text = ingest.text(openmetrics=fmt == "openmetrics")
    golden = FIXTURES / f"metrics.{fmt}.txt"
    if request.config.getoption("--update-golden"):
        golden.write_text(text)
    assert text == golden.read_text(), f"exposition changed: review, then --update-golden ({golden})"
