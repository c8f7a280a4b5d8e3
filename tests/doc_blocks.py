"""The code blocks of the Markdown docs, as the doc-example tests run them.

A fence opens with ```` ```lang ```` (indented as in a list item or not) and closes with the
same number of backticks. The line `<!-- skip: reason -->` right before a fence (blank lines
between are allowed) marks a block that is not run, with the reason shown in the test report.
Anything malformed (an unclosed fence, a skip marker with no reason or no fence after it) is a
`DocError` naming the file and line, so a broken page fails loudly rather than being skipped.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Final

RUN_LANGUAGES: Final = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python"}
"""Fence languages that are executed, and as what; every other language is only text."""

FENCE: Final = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^`]*)$")
SKIP: Final = re.compile(r"^\s*<!--\s*skip:(?P<reason>.*?)-->\s*$")
SKIP_LIKE: Final = re.compile(r"<!--\s*skip\b", re.IGNORECASE)
SERVES: Final = re.compile(
    r"\bllavero\s+(serve|gateway)\b|\bmake\s+(run|test)\b|(?:^|[;&|(]\s*|sudo\s+)nginx\b"
)
"""Commands that never return, or would recurse into the suite: their blocks must be skipped."""


class DocError(Exception):
    """A page the executor cannot read as intended; the message starts with `file:line:`."""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """1-based line of the opening fence."""
    language: str
    """"sh", "python", or the fence's own word for a block that is not run."""
    code: str
    skip: str | None
    """The reason of a skip marker, or None."""

    @property
    def runs(self) -> bool:
        return self.language in ("sh", "python") and self.skip is None

    def never_returns(self) -> str | None:
        """The first command of a shell block that keeps running (a server), if any."""
        if self.language != "sh":
            return None
        for line in self.code.splitlines():
            found = SERVES.search(line.split("#", 1)[0].strip())
            if found:
                return found.group(0)
        return None


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    pending_skip: tuple[int, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = FENCE.match(line)
        if opening:
            end = _closing(lines, index, opening, path)
            info = opening["info"].strip().split()
            word = info[0].lower() if info else ""
            body = "\n".join(lines[index + 1 : end])
            code = textwrap.dedent(body) + "\n"
            skip = pending_skip[1] if pending_skip else None
            found.append(Block(path, index + 1, RUN_LANGUAGES.get(word, word), code, skip))
            pending_skip = None
            index = end + 1
            continue
        marker = SKIP.match(line)
        if marker:
            reason = marker["reason"].strip()
            if not reason:
                raise DocError(f"{path}:{index + 1}: a skip marker needs a reason")
            if pending_skip:
                raise DocError(f"{path}:{pending_skip[0]}: skip marker with no fence after it")
            pending_skip = (index + 1, reason)
        elif SKIP_LIKE.search(line):
            raise DocError(f"{path}:{index + 1}: write the marker as `<!-- skip: reason -->`")
        elif pending_skip and line.strip():
            raise DocError(f"{path}:{pending_skip[0]}: skip marker with no fence right after it")
        index += 1
    if pending_skip:
        raise DocError(f"{path}:{pending_skip[0]}: skip marker with no fence after it")
    return found


def _closing(lines: list[str], start: int, opening: re.Match[str], path: Path) -> int:
    ticks = opening["ticks"]
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped.startswith(ticks) and not stripped.strip("`"):
            return index
    raise DocError(f"{path}:{start + 1}: the ``` fence opened here is never closed")
