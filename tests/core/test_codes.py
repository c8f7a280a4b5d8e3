"""Verify codes and key states, declared once (llavero/core/codes.py): every code has its row,
and every edge answers every refusal code from that row."""

from __future__ import annotations

import pytest

from llavero.core.codes import ANSWERS, Code, State
from llavero.core.verify import VerifyResult
from llavero.edges import answers


def test_every_code_has_its_answer() -> None:
    assert list(ANSWERS) == list(Code)


def test_wire_values_are_the_names() -> None:
    assert [code.value for code in Code] == [code.name for code in Code]
    assert [state.value for state in State] == ["ACTIVE", "DISABLED", "DELETED"]


def test_a_retry_after_comes_with_429_only() -> None:
    for code, row in ANSWERS.items():
        assert bool(row.retry_limits) == (row.http_status == 429), code


@pytest.mark.parametrize("code", [code for code in Code if code is not Code.VALID])
def test_every_refusal_is_answered_from_its_row(code: Code) -> None:
    refusal = answers.refusal(VerifyResult(code))
    assert refusal is not None
    error = refusal.body()["error"]
    assert (refusal.status, error["status"]) == (code.answer.http_status, code.answer.google_status)
    assert error["details"][0]["reason"] == code.answer.reason
    assert ("Retry-After" in refusal.headers) == bool(code.answer.retry_limits)


def test_a_valid_key_is_not_refused() -> None:
    assert answers.refusal(VerifyResult(Code.VALID)) is None


def test_the_api_accepts_the_states_a_user_may_set() -> None:
    from typing import get_args

    from llavero.api.schemas import KeyUpdate
    from llavero.core.codes import LIVE_STATES

    literal, _none = get_args(KeyUpdate.model_fields["state"].annotation)
    assert get_args(literal) == LIVE_STATES
