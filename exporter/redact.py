"""Credentials never reach a log line: passwords in URLs (redis://user:secret@host), password=
query parameters and the secrets the configuration names are replaced by `***`.

The filter sits on the log handlers, so it covers every logger, redis-py's exception texts and
tracebacks included, without each call site having to remember.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@")
QUERY_PASSWORD = re.compile(r"(?P<head>[?&][A-Za-z_]*password=)[^&\s]+", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    text = URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    text = QUERY_PASSWORD.sub(rf"\g<head>{MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def redacted_url(url: str) -> str:
    """One URL without its passwords (the servers' in the user info, any `*password` option),
    for logs and pages. Read as text, so that even a URL that does not parse shows none."""
    scheme, sep, rest = url.partition("://")
    head, question, query = rest.partition("?")
    userinfo, at, hosts = head.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":" + MASK
    query = re.sub(r"((?:^|&)[^&=]*password=)[^&#]*", rf"\1{MASK}", query, flags=re.IGNORECASE)
    return scheme + sep + userinfo + at + hosts + question + query


def url_secrets(url: str) -> list[str]:
    """The passwords of a URL (the server's, any `*password` option), as written and decoded,
    for `redact`."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return []
    found += [value for name, value in parse_qsl(parts.query) if name.lower().endswith("password")]
    return [form for secret in found if secret for form in (secret, unquote(secret))]


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) with `redact` before it is formatted."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def install(secrets: Iterable[str] = ()) -> None:
    """Put the filter on every handler of the root logger (call after logging is set up)."""
    redacting = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
