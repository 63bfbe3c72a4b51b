"""Basic auth against the web config's bcrypt hashes, the way exporter-toolkit checks them.

bcrypt is slow on purpose (about 70 ms at cost 10), too slow to run on every scrape: verdicts are
cached per (user, hash, password), keyed by a SHA-256 so no password is kept in memory. Accepted
and refused credentials are cached apart, so a flood of wrong passwords cannot push a scraper's
out. One bcrypt runs at a time and a request waits at most BCRYPT_WAIT_SECONDS for its turn
(then it is refused), so such a flood cannot pile up threads either. An unknown user is checked
against a fixed hash so the answer takes as long as for a known one.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

CACHE_SIZE = 100  # each, for accepted and for refused credentials
BCRYPT_WAIT_SECONDS = 2.0
BCRYPT_MAX_BYTES = 72  # bcrypt reads no further; htpasswd and Go truncate the same way
# bcrypt of "fakepassword" at cost 10 (exporter-toolkit's), for users that do not exist.
UNKNOWN_USER_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


def credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, or None."""
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class _Verdicts:
    """A bounded LRU of credential digests."""

    def __init__(self) -> None:
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, key: bytes) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def add(self, key: bytes) -> None:
        self._keys[key] = None
        while len(self._keys) > CACHE_SIZE:
            self._keys.popitem(last=False)


class BasicAuth:
    """Checks credentials; safe to share between the server's threads."""

    def __init__(self) -> None:
        self._accepted = _Verdicts()
        self._refused = _Verdicts()
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def check(self, users: Mapping[str, bytes], authorization: str | None) -> bool:
        given = credentials(authorization)
        if given is None:
            return False
        user, password = given
        known = user in users
        hashed = users[user] if known else UNKNOWN_USER_HASH
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password.encode()))).digest()
        with self._cache_lock:
            if key in self._accepted:
                return known
            if key in self._refused:
                return False
        if not self._bcrypt_lock.acquire(timeout=BCRYPT_WAIT_SECONDS):
            return False
        try:
            verdict = bcrypt.checkpw(password.encode()[:BCRYPT_MAX_BYTES], hashed)
        finally:
            self._bcrypt_lock.release()
        with self._cache_lock:
            (self._accepted if verdict else self._refused).add(key)
        return known and verdict
