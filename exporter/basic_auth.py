"""Basic auth against the web config's bcrypt hashes, the way exporter-toolkit checks them.

bcrypt is slow on purpose (about 70 ms at cost 10), too slow to run on every scrape: verdicts are
cached per (user, hash, password), keyed by a SHA-256 so no password is kept in memory. Only one
bcrypt runs at a time, and an unknown user is checked against a fixed hash so the answer takes
as long as for a known one.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

CACHE_SIZE = 100
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


class BasicAuth:
    """Checks credentials; safe to share between the server's threads."""

    def __init__(self) -> None:
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
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
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
        if verdict is None:
            with self._bcrypt_lock:
                verdict = bcrypt.checkpw(password.encode()[:BCRYPT_MAX_BYTES], hashed)
            with self._cache_lock:
                self._cache[key] = verdict
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return known and verdict
