"""Credentials never reach a log line: passwords in URLs (redis://user:secret@host), password=
query parameters and the secrets the configuration names are replaced by `***`.

The filter sits on the log handlers, so it covers every logger, redis-py's exception texts and
tracebacks included, without each call site having to remember.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"
URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@")
QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s]+", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    text = URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    text = QUERY_PASSWORD.sub(rf"\g<head>{MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """The password of a URL, as written and decoded, for `redact`."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


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
