"""`llavero scan`: find Llavero key strings and management tokens in files, directories, the
history of a git repository and standard input (docs/leaks.md).

A match of the published pattern is a finding only when its checksum holds, so look-alikes
(one character changed, another prefix, cut short) are never reported. A finding keeps the
string in memory, to look it up, but shows only its prefix and last four characters.
"""

from __future__ import annotations

import mmap
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Literal

import pathspec

from llavero.core import keyformat
from llavero.service.tokens import TOKEN_PREFIX

Kind = Literal["key", "token"]
BODY = rb"_[0-9A-Za-z]{%d}\b" % keyformat.BODY_LENGTH
WORD_BYTES = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
MAP_FROM_BYTES = 16 * 1024 * 1024
ZERO_SHA = "0" * 40
GITLINK_MODE = "160000"
Progress = Callable[[int], None]
"""Called with the number of bytes (or git blobs) just scanned."""


def pattern(prefix: str) -> str:
    """The regular expression docs/leaks.md publishes for a deployment's key prefix."""
    return rf"\b{re.escape(prefix)}_[0-9A-Za-z]{{{keyformat.BODY_LENGTH}}}\b"


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    kind: Kind
    prefix: str
    last4: str
    commit: str | None = None
    key_id: str | None = None
    project: str | None = None
    state: str | None = None
    secret: str = field(default="", repr=False, compare=False)

    @property
    def masked(self) -> str:
        return f"{self.prefix}_…{self.last4}"

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of docs/leaks.md: never the whole string."""
        data: dict[str, object] = {"path": self.path, "line": self.line}
        if self.commit is not None:
            data["commit"] = self.commit
        data.update(kind=self.kind, last4=self.last4)
        for name in ("key_id", "project", "state"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def identified(self, key_id: str, project: str, state: str) -> Finding:
        return replace(self, key_id=key_id, project=project, state=state)


class Scanner:
    """The published pattern (`pattern`), compiled to start with a literal (the prefixes'
    shared start): the regex engine then skips ahead by substring search, several times faster
    than a pattern that starts with `\b` or an alternation (`python -m bench.leaks`). The
    left word boundary is checked by hand on the few candidates."""

    def __init__(self, key_prefix: str = "llv") -> None:
        self._kinds: dict[str, Kind] = {key_prefix: "key", TOKEN_PREFIX: "token"}
        # One pass when the prefixes share a start (`llv`, `llvtok`), else one per prefix.
        shared = os.path.commonprefix(list(self._kinds))
        if shared:
            rests = "|".join(re.escape(p[len(shared) :]) for p in sorted(self._kinds, key=len))
            sources = [f"{re.escape(shared)}(?:{rests})"]
        else:
            sources = [re.escape(prefix) for prefix in self._kinds]
        self._searches = [re.compile(source.encode() + BODY) for source in sources]

    def scan_bytes(
        self, data: bytes | mmap.mmap, path: str, commit: str | None = None
    ) -> Iterator[Finding]:
        candidates = sorted(
            (match.start(), match.group().decode("ascii"))
            for regex in self._searches
            for match in regex.finditer(data)
            if match.start() == 0 or data[match.start() - 1] not in WORD_BYTES
        )
        line, counted = 1, 0
        for start, text in candidates:
            prefix = text[: -keyformat.BODY_LENGTH - 1]
            if not keyformat.is_well_formed(text, prefix):
                continue
            line += data[counted:start].count(b"\n")
            counted = start
            yield Finding(
                path, line, self._kinds[prefix], prefix, keyformat.last4(text), commit, secret=text
            )

    def scan_stream(self, stream: IO[bytes], path: str = "<stdin>") -> Iterator[Finding]:
        yield from self.scan_bytes(stream.read(), path)

    def scan_paths(
        self, paths: Iterable[Path], *, gitignore: bool = True, progress: Progress | None = None
    ) -> Iterator[Finding]:
        for path in paths:
            for file in files_under(path, gitignore=gitignore):
                with contents(file) as data:
                    yield from self.scan_bytes(data, str(file))
                    size = len(data)
                if progress is not None:
                    progress(size)

    def scan_git(
        self,
        repo: Path,
        *,
        progress: Progress | None = None,
        blobs: dict[str, tuple[str, str]] | None = None,
    ) -> Iterator[Finding]:
        """Every blob of every commit on every ref, each read once, named by the first commit
        and path that brought it in; a string is reported once, where it first appeared.
        `blobs` is `git_blobs(repo)` when the caller has it already (to size a progress bar)."""
        blobs = git_blobs(repo) if blobs is None else blobs
        seen: set[str] = set()
        for (commit, path), data in zip(blobs.values(), read_blobs(repo, list(blobs)), strict=True):
            for finding in self.scan_bytes(data, path, commit):
                if finding.secret not in seen:
                    seen.add(finding.secret)
                    yield finding
            if progress is not None:
                progress(1)


@contextmanager
def contents(file: Path) -> Iterator[bytes | mmap.mmap]:
    """A file's bytes; a large one mapped rather than read, so memory stays flat."""
    with file.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < MAP_FROM_BYTES:
            yield handle.read()
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped


def files_under(path: Path, *, gitignore: bool = True) -> Iterator[Path]:
    """A file as given; the files of a directory, without `.git` and, unless told otherwise,
    without what its `.gitignore` files leave out. Symbolic links are not followed."""
    if not path.is_dir():
        yield path
        return
    rules: list[tuple[Path, pathspec.GitIgnoreSpec]] = []
    for directory, dirnames, filenames in os.walk(path):
        here = Path(directory)
        rules = [(base, spec) for base, spec in rules if base == here or base in here.parents]
        if gitignore and ".gitignore" in filenames:
            lines = (here / ".gitignore").read_text(errors="replace").splitlines()
            rules.append((here, pathspec.GitIgnoreSpec.from_lines(lines)))
        dirnames[:] = sorted(
            name
            for name in dirnames
            if name != ".git"
            and not (here / name).is_symlink()
            and not _ignored(rules, here / name, directory=True)
        )
        for name in sorted(filenames):
            file = here / name
            if not file.is_symlink() and not _ignored(rules, file) and file.is_file():
                yield file


def _ignored(
    rules: list[tuple[Path, pathspec.GitIgnoreSpec]], path: Path, directory: bool = False
) -> bool:
    for base, spec in rules:
        relative = path.relative_to(base).as_posix() + ("/" if directory else "")
        if spec.match_file(relative):
            return True
    return False


def total_size(paths: Iterable[Path], *, gitignore: bool = True) -> int:
    return sum(
        file.stat().st_size for path in paths for file in files_under(path, gitignore=gitignore)
    )


class GitError(Exception):
    """`git` failed: not a repository, or no git at all."""


def _git(repo: Path, *args: str) -> list[str]:
    return ["git", "-C", str(repo), "-c", "core.quotePath=false", *args]


def git_blobs(repo: Path) -> dict[str, tuple[str, str]]:
    """Blob id -> (commit, path) of the oldest commit that added or changed it, over all refs."""
    command = _git(
        repo, "log", "--all", "--reverse", "--date-order", "--no-renames", "--raw",
        "--no-abbrev", "-z", "--format=%x01%H",
    )  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, check=False)
    except OSError as error:
        raise GitError(f"git: {error.strerror}") from None
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines() or ["git log failed"]
        raise GitError(reason[0])
    blobs: dict[str, tuple[str, str]] = {}
    commit = ""
    tokens = iter(result.stdout.split(b"\0"))
    for token in tokens:
        text = token.lstrip(b"\n")
        if text.startswith(b"\x01"):
            commit = text[1:].decode()
        elif text.startswith(b":"):
            path = next(tokens, b"").decode(errors="replace")
            fields = text[1:].decode().split()
            mode, blob, status = fields[1], fields[3], fields[4]
            if status != "D" and mode != GITLINK_MODE and blob != ZERO_SHA:
                blobs.setdefault(blob, (commit, path))
    return blobs


def read_blobs(repo: Path, blob_ids: list[str]) -> Iterator[bytes]:
    """The contents of these blobs, in order, through one `git cat-file --batch`."""
    process = subprocess.Popen(
        _git(repo, "cat-file", "--batch"), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def feed() -> None:
        try:
            for blob_id in blob_ids:
                stdin.write(f"{blob_id}\n".encode())
        except BrokenPipeError:
            pass
        finally:
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        for _ in blob_ids:
            header = stdout.readline().split()
            if len(header) != 3:
                raise GitError("git cat-file: unexpected answer")
            data = stdout.read(int(header[2]))
            stdout.read(1)  # the newline after the contents
            yield data
    finally:
        stdout.close()
        process.wait()
        writer.join()
