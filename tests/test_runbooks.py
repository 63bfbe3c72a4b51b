"""The runbooks the exporter serves: one section per alert, found by the alert's name."""
from __future__ import annotations

from exporter import runbooks

SAMPLE = """# Runbooks
Intro.
## Agents
### AgentNotSeen
**Meaning.** Gone.
#### Details
more
### SwarmAvailabilityLow
Low.
## Tasks
### TaskThroughputLow
Slow.
"""


def test_a_section_runs_to_the_next_heading_of_its_level():
    sections = runbooks.parse(SAMPLE)
    assert {"AgentNotSeen", "SwarmAvailabilityLow", "TaskThroughputLow"} <= set(sections)
    assert sections["Agents"].endswith("Low.\n")  # a group runs to the next group
    assert sections["AgentNotSeen"] == "### AgentNotSeen\n**Meaning.** Gone.\n#### Details\nmore\n"
    assert sections["SwarmAvailabilityLow"] == "### SwarmAvailabilityLow\nLow.\n"


def test_the_shipped_runbooks_are_served_by_name_and_listed():
    shipped = runbooks.sections()
    assert "AgentNotSeen" in shipped
    status, kind, body = runbooks.respond("/runbooks/AgentNotSeen")
    assert status == 200 and kind.startswith("text/plain") and body.startswith(b"## AgentNotSeen")
    status, kind, body = runbooks.respond("/runbooks")
    assert status == 200 and b'href="runbooks/AgentNotSeen"' in body
    assert runbooks.respond("/runbooks/NoSuchAlert<script>")[0] == 404
