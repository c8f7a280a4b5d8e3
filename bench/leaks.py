"""How fast leaks are found and answered: `llavero scan` over a generated tree and over a git
history, and GitHub's partner request with 1,000 matches.

`python -m bench.leaks [--tree-mb 64] [--commits 10000] [--batch 1000] [--rounds 3]
[--json FILE]` (run from the repository root; needs `git`).

*tree*: `Scanner.scan_paths` over a generated directory of text files (a key in one file in
fifty), in MB/s of file contents. *git*: `Scanner.scan_git` over a repository of `--commits`
commits made with `git fast-import`, each changing one file (a key in one commit in a hundred),
in MB/s of blob contents and commits/s; it includes `git log` and `git cat-file`. *batch*: one
signed `POST /v1/secret-scanning/github` of `--batch` matches (half live keys, revoked by it;
half unknown), in process on SQLite, in seconds; GitHub's timeout is a few seconds.
Each figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llavero.cli.scan import Scanner, git_blobs
from llavero.core import keyformat

FILE_SIZE = 64 * 1024
WORDS = (
    "the quick brown fox jumps over a lazy dog while config values and tokens fly by".split()  # noqa: SIM905
)


def filler(rng: random.Random, size: int) -> str:
    lines, length = [], 0
    while length < size:
        line = " ".join(rng.choices(WORDS, k=12))
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)


def make_tree(root: Path, megabytes: int, rng: random.Random) -> tuple[int, int]:
    """Files of `FILE_SIZE` in 16 directories; returns (bytes, keys planted)."""
    total, planted = 0, 0
    for index in range(megabytes * 1024 * 1024 // FILE_SIZE):
        directory = root / f"dir{index % 16}"
        directory.mkdir(parents=True, exist_ok=True)
        text = filler(rng, FILE_SIZE)
        if index % 50 == 0:
            text += f"\nAPI_KEY={keyformat.generate('llv')}\n"
            planted += 1
        (directory / f"file{index}.txt").write_text(text)
        total += len(text)
    return total, planted


def make_history(repo: Path, commits: int, rng: random.Random) -> int:
    """A repository of `commits` commits through `git fast-import`; returns keys planted."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    stream, planted = [], 0
    for number in range(1, commits + 1):
        content = filler(rng, 1024)
        if number % 100 == 0:
            content += f"\nGEMINI_KEY={keyformat.generate('llv')}\n"
            planted += 1
        message = f"commit {number}"
        parent = f"from :{number - 1}\n" if number > 1 else ""
        stream.append(
            f"commit refs/heads/main\nmark :{number}\n"
            f"committer Bench <bench@example.com> {1_700_000_000 + number} +0000\n"
            f"data {len(message)}\n{message}\n{parent}"
            f"M 100644 inline src/file{number % 200}.txt\ndata {len(content.encode())}\n{content}\n"
        )
    subprocess.run(
        ["git", "-C", str(repo), "fast-import", "--quiet"],
        input="".join(stream).encode(),
        check=True,
    )
    return planted


def median_seconds(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_tree(workdir: Path, megabytes: int, rounds: int, rng: random.Random) -> dict[str, Any]:
    root = workdir / "tree"
    size, planted = make_tree(root, megabytes, rng)
    scanner = Scanner("llv")
    found = len(list(scanner.scan_paths([root])))
    assert found == planted, (found, planted)
    seconds = median_seconds(lambda: list(scanner.scan_paths([root])), rounds)
    return {"megabytes": size / 1e6, "seconds": seconds, "mb_per_s": size / 1e6 / seconds}


def bench_git(workdir: Path, commits: int, rounds: int, rng: random.Random) -> dict[str, Any]:
    repo = workdir / "repo"
    planted = make_history(repo, commits, rng)
    scanner = Scanner("llv")
    found = len(list(scanner.scan_git(repo)))
    assert found == planted, (found, planted)
    blobs = git_blobs(repo)
    sizes = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-check=%(objectsize)"],
        input="".join(f"{blob}\n" for blob in blobs).encode(),
        capture_output=True,
        check=True,
    ).stdout.split()
    size = sum(int(value) for value in sizes)
    seconds = median_seconds(lambda: list(scanner.scan_git(repo)), rounds)
    return {
        "commits": commits,
        "blobs": len(blobs),
        "megabytes": size / 1e6,
        "seconds": seconds,
        "mb_per_s": size / 1e6 / seconds,
        "commits_per_s": commits / seconds,
    }


def bench_batch(workdir: Path, matches: int, rounds: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from fastapi.testclient import TestClient

    from llavero.application import create_app
    from llavero.config import Settings
    from llavero.service import Actor, Llavero

    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    document = {"public_keys": [{"key_identifier": "bench", "key": public.decode()}]}
    (workdir / "keyformat.json").write_text(json.dumps(document))
    times = []
    for round_number in range(rounds):
        settings = Settings(
            data_dir=workdir,
            database_url=f"sqlite:///{workdir / f'batch{round_number}.sqlite3'}",
            secret_key="bench-secret-0123456789abcdef",
            change_poll_seconds=0,
            github_secret_scanning_keys=str(workdir / "keyformat.json"),
        )
        llavero = Llavero(settings)
        llavero.upgrade()
        admin = Actor.system("bench")
        project = llavero.projects.create(admin, "Bench").id
        live = [llavero.keys.create(admin, project).key_string for _ in range(matches // 2)]
        unknown = [keyformat.generate("llv") for _ in range(matches - len(live))]
        body = json.dumps(
            [
                {"token": token, "type": "llavero_api_key", "url": "https://x", "source": "content"}
                for token in live + unknown
            ]
        ).encode()
        signature = base64.b64encode(private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
        headers = {
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": "bench",
            "Github-Public-Key-Signature": signature,
        }
        with TestClient(create_app(llavero)) as client:
            start = time.perf_counter()
            response = client.post("/v1/secret-scanning/github", content=body, headers=headers)
            times.append(time.perf_counter() - start)
        assert response.status_code == 200 and len(response.json()) == matches
        llavero.close()
    return {"matches": matches, "seconds": statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree-mb", type=int, default=64)
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(14)
    with tempfile.TemporaryDirectory(prefix="llavero-bench-leaks-") as directory:
        workdir = Path(directory)
        os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
        results = {
            "tree": bench_tree(workdir, args.tree_mb, args.rounds, rng),
            "git": bench_git(workdir, args.commits, args.rounds, rng),
            "batch": bench_batch(workdir, args.batch, args.rounds),
        }
    tree, git, batch = results["tree"], results["git"], results["batch"]
    print(f"tree:  {tree['megabytes']:.1f} MB in {tree['seconds']:.2f} s", end=" ")
    print(f"= {tree['mb_per_s']:.0f} MB/s")
    print(
        f"git:   {git['commits']} commits, {git['blobs']} blobs, {git['megabytes']:.1f} MB in "
        f"{git['seconds']:.2f} s = {git['mb_per_s']:.1f} MB/s, {git['commits_per_s']:.0f} commits/s"
    )
    print(f"batch: {batch['matches']} matches answered in {batch['seconds']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
