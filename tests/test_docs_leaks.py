"""docs/leaks.md publishes the key pattern and the checksum rule for other scanners: the
regular expression and the Python rule are read from the page and run against generated keys
and near misses, and the gitleaks and trufflehog configs carry the same expression."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from llavero.cli.scan import pattern
from llavero.core import keyformat
from llavero.service.tokens import TOKEN_PREFIX

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "leaks.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE, re.DOTALL)


KEY_REGEX, TOKEN_REGEX = (block.strip() for block in blocks("regex")[:2])


def published_rule() -> Callable[[str], bool]:
    namespace: dict[str, object] = {}
    exec(blocks("python")[0], namespace)  # the page's own example, assertions included
    rule = namespace["is_llavero_key"]
    assert callable(rule)
    return rule  # type: ignore[return-value]


def near_misses(key: str) -> list[str]:
    body = key[key.index("_") + 1 :]
    swap = {c: ("B" if c == "A" else "A") for c in keyformat.ALPHABET}
    changed = [
        key[:i] + swap[key[i]] + key[i + 1 :] for i in range(key.index("_") + 1, len(key), 7)
    ]
    return [*changed, "llw_" + body, "xllv_" + body, "llv-" + body, key[:-1], key + "0"]


def test_the_published_expressions_are_the_ones_llavero_uses() -> None:
    assert pattern("llv") == KEY_REGEX
    assert pattern(TOKEN_PREFIX) == TOKEN_REGEX


@pytest.mark.parametrize("prefix", ["llv", TOKEN_PREFIX])
def test_generated_strings_match_and_pass_the_published_checksum(prefix: str) -> None:
    regex = re.compile(KEY_REGEX if prefix == "llv" else TOKEN_REGEX)
    rule = published_rule()
    for _ in range(200):
        key = keyformat.generate(prefix)
        assert regex.findall(f'export GEMINI_API_KEY="{key}"\n') == [key]
        assert rule(key)


def test_near_misses_fail_the_pattern_or_the_checksum() -> None:
    regex, rule = re.compile(KEY_REGEX), published_rule()
    for _ in range(50):
        key = keyformat.generate("llv")
        for miss in near_misses(key):
            found = regex.findall(f" {miss} ")
            assert not [m for m in found if rule(m)], miss
            assert not keyformat.is_well_formed(miss, "llv")


def test_the_ready_configs_carry_the_published_expressions() -> None:
    (gitleaks,) = blocks("toml")
    rules = {rule["id"]: rule["regex"] for rule in tomllib.loads(gitleaks)["rules"]}
    assert rules == {"llavero-api-key": KEY_REGEX, "llavero-management-token": TOKEN_REGEX}
    (trufflehog,) = blocks("yaml")
    assert f"key: '{KEY_REGEX}'" in trufflehog and f"token: '{TOKEN_REGEX}'" in trufflehog
