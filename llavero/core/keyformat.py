"""The key string format: `<prefix>_<32 random base62><6 base62 of CRC32>`.

The checksum lets a verifier turn away a mistyped or made-up key without touching storage, and
lets secret scanners find leaked keys with few false positives. Only a keyed hash of a key is
ever stored (`KeyHasher`), so a copy of the database is no copy of the keys.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
BODY_LENGTH = RANDOM_LENGTH + CHECKSUM_LENGTH
PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9]{0,15}")
_BASE62 = frozenset(ALPHABET)


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def checksum(prefix: str, random_part: str) -> str:
    """CRC32 of everything before the checksum, as 6 base62 characters (62**6 > 2**32)."""
    return _base62(zlib.crc32(f"{prefix}_{random_part}".encode()), CHECKSUM_LENGTH)


def generate(prefix: str) -> str:
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"key prefix {prefix!r} must match {PREFIX_PATTERN.pattern}")
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return f"{prefix}_{random_part}{checksum(prefix, random_part)}"


def is_well_formed(key: str, prefix: str) -> bool:
    """Shape and checksum, in constant work: the first thing every verify does."""
    if len(key) != len(prefix) + 1 + BODY_LENGTH or not key.startswith(prefix + "_"):
        return False
    body = key[len(prefix) + 1 :]
    if not _BASE62.issuperset(body):
        return False
    return body[RANDOM_LENGTH:] == checksum(prefix, body[:RANDOM_LENGTH])


# A key's or token's place in free text: the prefix run, then at least its 38 characters.
_EMBEDDED = re.compile(r"([a-z0-9]{1,64})_([0-9A-Za-z]{38,})")


def contains_key(text: str) -> bool:
    """Whether `text` holds a well-formed key string or token of any prefix, also glued to other
    characters (`xllv_…`, `llv_…abc`): a checksum match, so ids of a similar shape (`resp_…`)
    are not taken for keys."""
    if "_" not in text:
        return False
    for match in _EMBEDDED.finditer(text):
        run, body = match.group(1), match.group(2)[:BODY_LENGTH]
        for start in range(len(run)):
            prefix = run[start:]
            if PREFIX_PATTERN.fullmatch(prefix) and is_well_formed(f"{prefix}_{body}", prefix):
                return True
    return False


def last4(key: str) -> str:
    return key[-4:]


class KeyHasher:
    """Keyed BLAKE2b: faster than HMAC-SHA256 in CPython and as strong for this use.

    Each hash starts from a copy of one keyed state: the key is absorbed once, not per hash,
    and no keyword arguments are parsed (0.62 -> 0.41 µs a hash, bench/notes.md item 13)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the hash secret must be at least 16 bytes")
        key = hashlib.blake2b(secret, digest_size=64).digest()
        self._keyed = hashlib.blake2b(key=key, digest_size=32)

    def hash(self, key: str) -> str:
        """The hash as stored in the database: hex of `digest`."""
        state = self._keyed.copy()
        state.update(key.encode())
        return state.hexdigest()

    def digest(self, key: str) -> bytes:
        """The raw 32 bytes: what the key cache is keyed by (half the memory of the hex)."""
        state = self._keyed.copy()
        state.update(key.encode())
        return state.digest()
