"""Units the upstream's answer states (Gemini's `usageMetadata.totalTokenCount`, OpenAI's
`usage.total_tokens`), read while the answer streams past the gateway."""

from __future__ import annotations

import re
from typing import Final

import aiohttp

METERED_TYPES: Final = ("json", "event-stream")
UNITS_RE: Final = re.compile(rb'"(?:totalTokenCount|total_tokens)"\s*:\s*([0-9]{1,15})')
SCAN_TAIL: Final = 64


class UnitsScanner:
    """The last token total an answer states, found while its bytes stream past.

    A regex over a sliding window rather than a JSON parser, because an answer may be a stream
    of server-sent events or JSON too large to hold: Gemini repeats a running total in every
    event and OpenAI states it once at the end, so the last complete match is the total. A match
    cut by a chunk boundary is found again, whole, with the next chunk, and then wins."""

    def __init__(self) -> None:
        self.units: int | None = None
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        window = self._tail + chunk
        for match in UNITS_RE.finditer(window):
            self.units = int(match.group(1))
        self._tail = window[-SCAN_TAIL:]


def is_metered(answer: aiohttp.ClientResponse) -> bool:
    content_type = answer.headers.get("content-type", "")
    return answer.headers.get("content-encoding", "identity") == "identity" and any(
        kind in content_type for kind in METERED_TYPES
    )
