"""The alert runbooks (docs/runbooks.md, shipped inside the package), served by the exporter at
`/runbooks/<AlertName>`, so that every alert's `runbook_url` points at something that exists in
every deployment of the bundle.

A runbook is the section under a one-word heading (the alert's name; a group heading such as
"Agents" is served the same way), as plain text: the Markdown reads as it is. `/runbooks` lists
them all.
"""
from __future__ import annotations

import functools
import html
import re
from importlib import resources

HEADING = re.compile(r"^(#{2,4}) ([A-Za-z][A-Za-z0-9]+)\s*$")
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"


def parse(markdown: str) -> dict[str, str]:
    """Alert name → its section (heading included), ending at the next heading of its level."""
    lines = markdown.splitlines(keepends=True)
    sections: dict[str, str] = {}
    for i, line in enumerate(lines):
        match = HEADING.match(line)
        if not match:
            continue
        level = len(match.group(1))
        end = next((j for j in range(i + 1, len(lines))
                    if (m := re.match(r"^(#+) ", lines[j])) and len(m.group(1)) <= level),
                   len(lines))
        sections[match.group(2)] = "".join(lines[i:end]).rstrip() + "\n"
    return sections


@functools.cache
def sections() -> dict[str, str]:
    return parse(resources.files("exporter").joinpath("runbooks.md").read_text(encoding="utf-8"))


def respond(path: str) -> tuple[int, str, bytes]:
    """The answer to GET /runbooks or /runbooks/<AlertName>."""
    name = path.removeprefix("/runbooks").strip("/")
    runbooks = sections()
    if not name:
        items = "".join(f'<li><a href="runbooks/{html.escape(n)}">{html.escape(n)}</a></li>'
                        for n in sorted(runbooks))
        page = (f"<!doctype html><html><head><title>Runbooks</title></head><body>"
                f"<h1>agent-exporter runbooks</h1><ul>{items}</ul></body></html>\n")
        return 200, HTML, page.encode()
    if name in runbooks:
        return 200, TEXT, runbooks[name].encode()
    return 404, TEXT, f"no runbook for {name[:100]!r}; see /runbooks\n".encode()
