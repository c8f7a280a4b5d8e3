"""Gateway path confinement: a request path may never lead out of the upstream's base path.

`--upstream http://host/api` joined with `/../secret` would be `http://host/secret`, reached with
the upstream's own credential. Servers and proxies on the way decode `%2e`, `%2f` and `%5c`,
sometimes twice, treat `\\` as `/`, and some fold Unicode lookalikes (`．`, `／`) into ASCII;
so the path is read as the most decoding of them would read it, and refused when that reading
has a dot segment, an empty segment (`//`), a backslash, an encoded slash or a control
character. A path that passes goes upstream byte for byte as the client sent it
(docs/security.md, "Gateway path confinement").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from llavero.edges.credentials import fully_unquoted
from llavero.errors import InvalidArgument

ENCODED_SEPARATOR: Final = re.compile(r"%(?:25)*(?:2f|5c)", re.IGNORECASE)
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
DOT_SEGMENTS: Final = frozenset({".", ".."})


def refusal_reason(raw_path: str) -> str | None:
    """Why `raw_path` (the request target's path, undecoded) could leave the base path."""
    if not raw_path.startswith("/"):
        return "must start with /"
    if ENCODED_SEPARATOR.search(raw_path):
        return "must not carry an encoded / or \\"
    # Most paths are plain ASCII without escapes: nothing to decode or fold, on the hot path.
    plain = raw_path.isascii() and "%" not in raw_path
    decoded = raw_path if plain else unicodedata.normalize("NFKC", fully_unquoted(raw_path))
    if "\\" in decoded or CONTROL.search(decoded):
        return "must not carry a backslash or a control character"
    segments = decoded.split("/")[1:]
    # `..;x` is `..` to servers that take path parameters (Tomcat); `.. ` to some that trim.
    if any(segment.split(";")[0].strip() in DOT_SEGMENTS for segment in segments):
        return "must not carry a . or .. segment"
    if any(not segment for segment in segments[:-1]):
        return "must not carry an empty segment (//)"
    return None


def confined(raw_path: str) -> str:
    """`raw_path` itself, or InvalidArgument naming the field `path`."""
    reason = refusal_reason(raw_path)
    if reason is not None:
        raise InvalidArgument(reason, field="path")
    return raw_path
