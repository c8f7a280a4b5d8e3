"""GitHub's secret scanning partner requests: is this body signed by one of GitHub's keys?

GitHub signs the raw body with ECDSA P-256 / SHA-256 and names the key in
`Github-Public-Key-Identifier`; its public keys come from a document shaped like
`https://api.github.com/meta/public_keys/secret_scanning` (`LLAVERO_GITHUB_SECRET_SCANNING_KEYS`,
a file or a URL). An identifier not known yet re-reads the document (a URL at most once a
minute), so a key GitHub rotates in is picked up without a restart (docs/leaks.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from llavero.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("llavero.secret_scanning")
REFRESH_SECONDS = 60.0
FILE_REFRESH_SECONDS = 1.0
MAX_HEADER = 512
FETCH_TIMEOUT = 5.0


def parse_keys(document: bytes) -> dict[str, ec.EllipticCurvePublicKey]:
    """The P-256 keys of a `{"public_keys": [{"key_identifier", "key"}]}` document; entries
    that are not P-256 PEM keys are left out (and logged), never trusted."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    entries = json.loads(document).get("public_keys", [])
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        identifier, pem = entry.get("key_identifier"), entry.get("key")
        if not isinstance(identifier, str) or not isinstance(pem, str):
            continue
        try:
            key = load_pem_public_key(pem.encode())
        except ValueError:
            log.warning("secret scanning key %s is not a PEM public key", identifier[:80])
            continue
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            keys[identifier] = key
        else:
            log.warning("secret scanning key %s is not an ECDSA P-256 key", identifier[:80])
    return keys


def http_get(url: str) -> bytes:
    response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    response.raise_for_status()
    return response.content


class SignatureChecker:
    def __init__(
        self,
        source: str | None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        fetch: Callable[[str], bytes] = http_get,
    ) -> None:
        self.source = source
        self._clock = clock
        self._fetch = fetch
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.source)

    def verify(self, identifier: str | None, signature: str | None, body: bytes) -> bool:
        """True only for a body signed by the key the identifier names."""
        if not self.source or not identifier or not signature:
            return False
        if len(identifier) > MAX_HEADER or len(signature) > MAX_HEADER:
            return False
        try:
            der = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        key = self._key(identifier)
        if key is None:
            return False
        try:
            key.verify(der, body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def _key(self, identifier: str) -> ec.EllipticCurvePublicKey | None:
        with self._lock:
            key = self._keys.get(identifier)
            if key is None and self._may_reload():
                self._reload()
                key = self._keys.get(identifier)
            return key

    def _may_reload(self) -> bool:
        """Not on every unknown identifier: anyone can send one. A file is cheap to read
        again, a URL is GitHub's to answer."""
        if self._loaded_at is None:
            return True
        wait = REFRESH_SECONDS if self._is_url() else FILE_REFRESH_SECONDS
        return self._clock.time() - self._loaded_at >= wait

    def _is_url(self) -> bool:
        return str(self.source).startswith(("https://", "http://"))

    def _reload(self) -> None:
        self._loaded_at = self._clock.time()
        source = str(self.source)
        try:
            document = self._fetch(source) if self._is_url() else Path(source).read_bytes()
            self._keys = parse_keys(document)
        except (OSError, httpx.HTTPError, ValueError, AttributeError) as error:
            log.warning("could not read the secret scanning keys: %s", type(error).__name__)
