"""Schemathesis over the OpenAPI document, in process against the ASGI app with an admin bearer
token: no 5xx, no undocumented status, no response that breaks its schema, no schema-violating
request accepted, `Allow` on every 405. Each operation alone, then statefully: workflows chained
by the links Schemathesis infers from the document (a created project's id into its keys, a
created key's id into rotate, delete, undelete; docs/security.md, "Malformed input").

The document is built once at import from a throwaway service (it does not depend on data); each
operation then runs against a fresh service of its own, passed to the call as `app`.

Not checked: `positive_data_acceptance`. The service validates more than JSON Schema can say
(key checksums, opaque page tokens, times in the future, control characters in names), and
such a request rightly gets a 400 naming the field; tests/api/test_errors.py covers those."""

from __future__ import annotations

from tempfile import TemporaryDirectory
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llavero.application import create_app
from llavero.config import Settings
from llavero.service import Llavero

# Forward auth answers every method on purpose: Envoy forwards the client's own method.
ANSWERS_EVERY_METHOD = "/v1/forward-auth"


def openapi_document() -> dict[str, Any]:
    with TemporaryDirectory() as data_dir:
        llavero = Llavero(Settings(data_dir=data_dir, secret_key="openapi-document-secret"))
        try:
            return create_app(llavero).openapi()
        finally:
            llavero.close()


DOCUMENT = openapi_document()


def serve_document(_request: Request) -> JSONResponse:
    return JSONResponse(DOCUMENT)


# Examples and fuzzing only: the coverage phase enumerates every boundary of every field and
# takes minutes; the fuzzing phase reaches the same edges in a bounded number of examples.
# No constants analysis: Schemathesis would harvest string literals from whatever modules are
# loaded, so generated data (and a stateful replay) would depend on which test files the same
# process imported before (under xdist, test_docs.py made the workflow replay differently).
CONFIG = schemathesis.Config.from_dict(
    {"phases": {"coverage": {"enabled": False}}, "analysis": {"constants": {"enabled": False}}}
)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", Starlette(routes=[Route("/openapi.json", serve_document)]), config=CONFIG
)


ADMIN_TOKEN: dict[str, str] = {}


@pytest.fixture(autouse=True)
def current_admin_token(admin_token: str) -> None:
    """Set before Hypothesis generates the first case, which is when auth is applied."""
    ADMIN_TOKEN["token"] = admin_token


@schema.auth(refresh_interval=None)
class AdminToken:
    """The admin token of the running test: as the document's own bearer scheme, so negative
    cases never mutate it into something the override would then replace."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return ADMIN_TOKEN["token"]

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # one service per operation, shared by its examples
    ],
)
def test_every_operation_conforms_to_the_document(
    case: schemathesis.Case, llavero: Llavero
) -> None:
    case.call_and_validate(app=create_app(llavero), excluded_checks=excluded_checks(case))


def excluded_checks(case: schemathesis.Case) -> list[Any]:
    excluded: list[Any] = [checks.positive_data_acceptance]
    if case.operation.path == ANSWERS_EVERY_METHOD:
        excluded.append(checks.unsupported_method)
    return excluded


Workflow = schema.as_state_machine()


def test_stateful_workflows_conform_and_find_no_5xx(llavero: Llavero) -> None:
    """Bounded (scenarios x steps) so the suite stays quick on two cores."""
    app = create_app(llavero)

    class OnThisService(Workflow):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": app}

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            assert response.status_code < 500, (case.method, case.path, response.text)
            case.validate_response(
                response, excluded_checks=excluded_checks(case), transport_kwargs=kwargs
            )

    OnThisService.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=8,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_the_document_declares_the_bearer_scheme_and_error_bodies() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["managementToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["managementToken"]["description"],
    }
    create_key = DOCUMENT["paths"]["/v1/projects/{project}/keys"]["post"]
    assert create_key["security"] == [{"managementToken": []}]
    for status in ("400", "401", "403", "404", "409", "412"):
        schema_ref = create_key["responses"][status]["content"]["application/json"]["schema"]
        assert schema_ref == {"$ref": "#/components/schemas/ErrorBody"}
    for operations in DOCUMENT["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]  # bad input is the SPEC's 400
