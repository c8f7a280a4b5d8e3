"""Every ```sh and ```python block of README.md and docs/*.md runs here, so a documented example
cannot break silently. A block that cannot run in a test has `<!-- skip: reason -->` right before
its fence (tests/doc_blocks.py reads the pages).

Each page gets a fresh `llavero serve` on a free loopback port, with a data dir of its own, and
its blocks run in order in one bash session (`set -euo pipefail`), as a reader would type them
into one terminal: a variable set in one block is there in the next. As the README's tour sets
up, `BASE` is the server, `TOKEN` an admin token, and `llavero` is on PATH; in the blocks,
`http://127.0.0.1:8080` means this server and `llvtok_…` this token. ```python blocks run with
the same environment. A command whose comment is a bare verify code (`curl … # DELETED`) must
answer that code. A failure names the page and line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llavero.core.codes import Code
from tests.doc_blocks import Block, DocError, blocks
from tests.loopback import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_BASE = "http://127.0.0.1:8080"
DOC_TOKEN = "llvtok_…"
BIN = Path(sys.executable).parent
EXPECTED_CODE = re.compile(rf"^(?P<command>.*\S)\s+#\s*(?P<code>{'|'.join(Code)})\s*$")
PYTHON_END = "LLAVERO_DOC_PYTHON_END"
PAGE_SECONDS = 300

PRELUDE = """\
set -euo pipefail
expect_code() {  # the verify answer on stdin must carry this code
    local answer
    answer=$(cat)
    printf '%s\\n' "$answer"
    case "$answer" in
        *"\\"code\\":\\"$1\\""*) ;;
        *) echo "doc-example: expected code $1" >&2; return 1 ;;
    esac
}
trap 'echo "doc-example: failed at script line $LINENO" >&2' ERR
"""


@dataclass
class Server:
    base: str
    token: str
    env: dict[str, str]
    workdir: Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`llavero serve` as the README's `make run` starts it, on its own port and data dir."""
    data = tmp_path / "data"
    workdir = tmp_path / "work"
    data.mkdir()
    workdir.mkdir()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "LLAVERO_DATA_DIR": str(data),
        "LLAVERO_DATABASE_URL": f"sqlite:///{data / 'llavero.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    for name in [name for name in env if name.startswith("LLAVERO_TEST_")]:
        del env[name]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = tmp_path / "serve.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [str(BIN / "llavero"), "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_serving(process, base, output)
        token = re.search(r"^\s+(llvtok_\w+)\s*$", output.read_text(), re.MULTILINE)
        assert token is not None, output.read_text()
        env.update({"BASE": base, "TOKEN": token.group(1)})
        yield Server(base, token.group(1), env, workdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def for_this_server(code: str, server: Server) -> str:
    return code.replace(DOC_BASE, server.base).replace(DOC_TOKEN, server.token)


def shell_lines(block: Block) -> list[str]:
    """The block's lines, with `cmd  # CODE` turned into a check that `cmd` answers CODE."""
    lines = block.code.rstrip("\n").split("\n")
    if block.language == "python":
        return [f"python - <<'{PYTHON_END}'", *lines, PYTHON_END]
    checked = []
    for line in lines:
        expected = EXPECTED_CODE.match(line)
        checked.append(
            f"{expected['command']} | expect_code {expected['code']}" if expected else line
        )
    return checked


def page_script(runnable: list[Block], server: Server) -> tuple[str, list[tuple[int, Block]]]:
    """One bash script for a page; with, for each block, the script line where it starts."""
    lines = PRELUDE.rstrip("\n").split("\n")
    starts: list[tuple[int, Block]] = []
    for block in runnable:
        lines.append(f"# {shown(block.path)}:{block.line}")
        starts.append((len(lines) + 1, block))
        lines.extend(for_this_server(line, server) for line in shell_lines(block))
    return "\n".join(lines) + "\n", starts


def failed_at(stderr: str, starts: list[tuple[int, Block]]) -> str:
    """`docs/x.md:42` for the last script line bash or Python complained about."""
    script_lines = re.findall(r"(?:script line |page\.sh: line )(\d+)", stderr)
    if not script_lines:
        return "one of its blocks"
    line = int(script_lines[-1])
    start, block = next(((s, b) for s, b in reversed(starts) if s <= line), starts[0])
    offset = line - start
    python_lines = re.findall(r'File "<stdin>", line (\d+)', stderr)
    if block.language == "python" and python_lines:
        offset = int(python_lines[-1]) - 1
    return f"{shown(block.path)}:{block.line + 1 + offset} (the block at line {block.line})"


def run_page(page: Path, server: Server) -> subprocess.CompletedProcess[str]:
    runnable = [block for block in blocks(page) if block.runs]
    serving = [block for block in runnable if block.never_returns()]
    if serving:
        pytest.fail(f"{shown(page)}:{serving[0].line}: a block that keeps running", pytrace=False)
    script, starts = page_script(runnable, server)
    path = server.workdir.parent / "page.sh"
    path.write_text(script, encoding="utf-8")
    # A session of its own, so that whatever a block leaves running is stopped with it.
    with subprocess.Popen(
        ["bash", str(path)],
        cwd=server.workdir,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=PAGE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(
                f"{shown(page)}: its examples did not finish within {PAGE_SECONDS} s (a block "
                f"that serves needs `<!-- skip: reason -->`)\n{stderr[-2000:]}",
                pytrace=False,
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if result.returncode != 0:
        pytest.fail(
            f"{shown(page)}: an example fails at {failed_at(result.stderr, starts)}, "
            f"exit {result.returncode}\n--- stderr (last lines)\n{result.stderr[-3000:]}\n"
            f"--- stdout (last lines)\n{result.stdout[-2000:]}",
            pytrace=False,
        )
    return result


def page_blocks(page: Path) -> list[Block]:
    try:
        return blocks(page)
    except DocError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_block_is_well_formed(page: Path) -> None:
    for block in page_blocks(page):
        if not block.runs:
            continue
        where = f"{shown(block.path)}:{block.line}"
        assert block.code.strip(), f"{where}: an empty block"
        server = block.never_returns()
        assert server is None, (
            f"{where}: `{server}` keeps running (or runs the suite): put "
            "`<!-- skip: reason -->` before the block"
        )


RUNNABLE = [page for page in PAGES if any(block.runs for block in blocks(page))]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: page.name)
def test_the_examples_of_a_page_run(page: Path, server: Server) -> None:
    run_page(page, server)


def test_the_client_example_can_be_run_twice(server: Server) -> None:
    """docs/client.md's first block is a script people re-run: it must not pile up projects."""
    first = next(block for block in blocks(ROOT / "docs" / "client.md") if block.runs)
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", for_this_server(first.code, server)],
            cwd=server.workdir,
            env=server.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    listed = subprocess.run(
        [str(BIN / "llavero"), "projects", "list", "--json"],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.count('"display_name": "Gemini API"') == 1, listed.stdout


# --- the executor itself ------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return page


def test_blocks_are_read_with_their_language_line_and_skip_reason(tmp_path: Path) -> None:
    page = write(
        tmp_path,
        "# T\n\n```sh\necho one\n```\n\n<!-- skip: needs a real nginx -->\n```bash\nnginx\n```\n"
        "- a list item:\n\n  ```python\n  print(1)\n  ```\n\n```json\n{}\n```\n",
    )
    found = blocks(page)
    assert [(b.language, b.line, b.skip, b.runs) for b in found] == [
        ("sh", 3, None, True),
        ("sh", 8, "needs a real nginx", False),
        ("python", 13, None, True),
        ("json", 17, None, False),
    ]
    assert found[2].code == "print(1)\n"


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("intro\n\n```sh\necho never closed\n", 3, "never closed"),
        ("<!-- skip: why -->\nsome prose\n```sh\necho\n```\n", 1, "no fence right after"),
        ("<!-- skip: -->\n```sh\necho\n```\n", 1, "needs a reason"),
        ("text\n<!-- skip: why -->\n", 2, "no fence after"),
        ("<!--skip because-->\n```sh\necho\n```\n", 1, "<!-- skip: reason -->"),
    ],
)
def test_a_malformed_page_names_its_file_and_line(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    page = write(tmp_path, text)
    with pytest.raises(DocError, match=re.escape(f"{page}:{line}:")) as error:
        blocks(page)
    assert says in str(error.value)


def test_a_failing_example_is_reported_at_its_page_and_line(tmp_path: Path, server: Server) -> None:
    page = write(tmp_path, '```sh\necho fine\n```\n\nThen:\n\n```sh\ntrue\necho "$UNSET"\n```\n')
    with pytest.raises(pytest.fail.Exception, match=r"page\.md:9 \(the block at line 7\)"):
        run_page(page, server)
    python = write(tmp_path, "```python\nx = 1\nraise ValueError(f'bad {x}')\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"page\.md:3 \(the block at line 1\)"):
        run_page(python, server)


@pytest.mark.parametrize(
    ("command", "serves"),
    [
        ("llavero serve --port 8080", True),
        ("python -m llavero gateway --upstream https://x", True),
        ("sudo nginx -s reload", True),
        ("make run", True),
        ("cp deploy/nginx/llavero.conf /etc/nginx/conf.d/", False),
        ("llavero keys list   # as llavero serve sees it", False),
    ],
)
def test_a_block_that_keeps_running_is_found(tmp_path: Path, command: str, serves: bool) -> None:
    (block,) = blocks(write(tmp_path, f"```sh\n{command}\n```\n"))
    assert (block.never_returns() is not None) is serves


def test_a_verify_comment_is_checked(tmp_path: Path, server: Server) -> None:
    body = shlex.quote(json.dumps({"key": "llv_" + "A" * 38}))
    command = (
        "curl -s -H 'Authorization: Bearer llvtok_…' -H 'content-type: application/json' "
        f"-d {body} http://127.0.0.1:8080/v1/keys:verify"
    )
    good = write(tmp_path, f"```sh\n{command}   # MALFORMED\n```\n")
    assert '"code":"MALFORMED"' in run_page(good, server).stdout
    bad = write(tmp_path, f"```sh\n{command}   # DELETED\n```\n")
    with pytest.raises(pytest.fail.Exception, match="expected code DELETED"):
        run_page(bad, server)


def test_a_page_that_never_finishes_fails_and_leaves_nothing_running(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "PAGE_SECONDS", 3)
    pid_file = tmp_path / "child.pid"
    page = write(tmp_path, f"```sh\nsleep 600 &\necho $! > {pid_file}\nwait\n```\n")
    with pytest.raises(pytest.fail.Exception, match="did not finish within 3 s"):
        run_page(page, server)
    status = Path(f"/proc/{int(pid_file.read_text())}/status")
    for _ in range(50):  # SIGKILL lands at once, but init reaps the orphan when it gets to it
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the block's `sleep` still runs: {status.read_text()[:200]}")
