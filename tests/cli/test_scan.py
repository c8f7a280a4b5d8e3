"""`llavero scan`: real files, a real git history (the `git` command in tmp_path), stdin; only
strings with a valid checksum are findings, and no output carries a whole key string."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llavero.cli import app
from llavero.cli.scan import MAP_FROM_BYTES, Scanner, files_under
from llavero.core import keyformat
from llavero.service import Actor, Llavero
from llavero.service.tokens import TOKEN_PREFIX

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
runner = CliRunner()


def near_misses(key: str) -> list[str]:
    """Look-alikes a scanner must not report: one character changed (in the random part and
    in the checksum), another prefix, cut short, run on into more characters."""
    body = key[len("llv_") :]
    flip = {c: ("B" if c == "A" else "A") for c in keyformat.ALPHABET}
    return [
        "llv_" + flip[body[0]] + body[1:],
        "llv_" + body[:-1] + flip[body[-1]],
        "llx_" + body,
        "xllv_" + body,
        key[:-1],
        key + "Z",
    ]


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, env=env, check=True
    )
    return result.stdout.decode().strip()


def commit(repo: Path, message: str, files: dict[str, str | None]) -> str:
    for name, content in files.items():
        path = repo / name
        if content is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_every_key_of_a_git_history_is_found_once_with_its_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first, second, third = (keyformat.generate("llv") for _ in range(3))
    token = keyformat.generate(TOKEN_PREFIX)
    misses = near_misses(first)
    c1 = commit(repo, "config", {"app/.env": f"GEMINI_KEY={first}\n", "README": "hello\n"})
    c2 = commit(repo, "more", {"app/.env": f"GEMINI_KEY={first}\nOTHER={second}\n"})
    c3 = commit(repo, "oops", {"ci.yml": f"token: {token}\n# {' '.join(misses)}\n"})
    c4 = commit(repo, "remove the secrets", {"app/.env": None, "ci.yml": None})
    git(repo, "checkout", "-q", "-b", "side", c2)
    c5 = commit(repo, "a branch", {"side.py": f'KEY = "{third}"\n\n\nAGAIN = "{first}"\n'})
    git(repo, "checkout", "-q", "main")
    assert not (repo / "app" / ".env").exists()  # gone from the work tree, not from history

    findings = list(Scanner("llv").scan_git(repo))

    found = {finding.secret: finding for finding in findings}
    assert len(findings) == len(found) == 4, findings
    assert (found[first].commit, found[first].path, found[first].line) == (c1, "app/.env", 1)
    assert (found[second].commit, found[second].path, found[second].line) == (c2, "app/.env", 2)
    assert (found[token].commit, found[token].kind) == (c3, "token")
    assert (found[third].commit, found[third].path) == (c5, "side.py")
    assert c4 not in {finding.commit for finding in findings}
    assert all(miss not in found for miss in misses)


def test_near_misses_are_never_reported(tmp_path: Path) -> None:
    key = keyformat.generate("llv")
    text = "\n".join(near_misses(key)).encode()
    assert list(Scanner("llv").scan_bytes(text, "x")) == []
    (finding,) = Scanner("llv").scan_bytes(text + b"\n'" + key.encode() + b"'", "x")
    assert finding.line == len(near_misses(key)) + 1 and finding.last4 == key[-4:]


def test_a_directory_scan_keeps_gitignore_unless_told(tmp_path: Path) -> None:
    key, ignored_key = keyformat.generate("llv"), keyformat.generate("llv")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(f"k = '{key}'\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.js").write_text(ignored_key)
    (tmp_path / "src" / "local.env").write_text(ignored_key)
    (tmp_path / ".gitignore").write_text("build/\n")
    (tmp_path / "src" / ".gitignore").write_text("*.env\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(ignored_key)
    scanned = {path.relative_to(tmp_path).as_posix() for path in files_under(tmp_path)}
    assert scanned == {".gitignore", "src/.gitignore", "src/app.py"}
    assert [f.secret for f in Scanner().scan_paths([tmp_path])] == [key]
    everything = {f.secret for f in Scanner().scan_paths([tmp_path], gitignore=False)}
    assert everything == {key, ignored_key}


def test_cli_json_names_the_key_never_prints_it(
    tmp_path: Path, cli_env: dict[str, str], llavero_for_cli: Llavero
) -> None:
    project = llavero_for_cli.projects.create(Actor.system("t"), "Scanned")
    created = llavero_for_cli.keys.create(Actor.system("t"), project.id)
    unknown = keyformat.generate("llv")
    (tmp_path / "notes.txt").write_text(f"a\nb {created.key_string}\n{unknown}\n")
    result = runner.invoke(app, ["scan", str(tmp_path / "notes.txt"), "--json"])
    assert result.exit_code == 1, result.output
    assert created.key_string not in result.output and unknown not in result.output
    findings = json.loads(result.stdout)["findings"]
    assert findings == [
        {
            "path": str(tmp_path / "notes.txt"),
            "line": 2,
            "kind": "key",
            "last4": created.key.last4,
            "key_id": created.key.id,
            "project": project.id,
            "state": "ACTIVE",
        },
        {"path": str(tmp_path / "notes.txt"), "line": 3, "kind": "key", "last4": unknown[-4:]},
    ]


def test_cli_exit_codes_and_stdin(tmp_path: Path, cli_env: dict[str, str]) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.txt").write_text("nothing here llv_short\n")
    assert runner.invoke(app, ["scan", str(clean)]).exit_code == 0
    assert runner.invoke(app, ["scan", str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(app, ["scan", "--git", str(clean)]).exit_code == 2
    key = keyformat.generate("llv")
    piped = runner.invoke(app, ["scan", "--stdin", "--sarif"], input=f"x={key}\n")
    assert piped.exit_code == 1
    sarif = json.loads(piped.stdout)
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "llavero-api-key"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    assert key not in piped.output


def test_cli_scan_in_a_real_process(tmp_path: Path, cli_env: dict[str, str]) -> None:
    key = keyformat.generate("llv")
    (tmp_path / "f").write_text(key)
    result = subprocess.run(
        [sys.executable, "-m", "llavero", "scan", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        env={**cli_env, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert f"llv_…{key[-4:]}" in result.stdout and key not in result.stdout + result.stderr


@pytest.fixture
def llavero_for_cli(cli_env: dict[str, str]) -> Iterator[Llavero]:
    from llavero.config import Settings

    service = Llavero(Settings())
    service.upgrade()
    yield service
    service.close()


def test_a_large_file_is_mapped_and_scanned_whole(tmp_path: Path) -> None:
    key = keyformat.generate("llv")
    big = tmp_path / "big.log"
    with big.open("wb") as handle:
        handle.write(b"x" * 10 + b"\n")
        handle.write(b"." * MAP_FROM_BYTES)
        handle.write(f"\nkey={key}\n".encode())
    (finding,) = Scanner().scan_paths([big])
    assert (finding.secret, finding.line) == (key, 3)
