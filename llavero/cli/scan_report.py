"""What `llavero scan` prints: a table, JSON (`{"findings": [...]}`) or SARIF 2.1.0 for code
scanning dashboards. Every form names a string by its prefix and last four characters only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llavero import __version__
from llavero.cli.scan import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULES = {
    "key": ("llavero-api-key", "Llavero API key"),
    "token": ("llavero-management-token", "Llavero management token"),
}


def as_json(findings: Sequence[Finding]) -> dict[str, Any]:
    return {"findings": [finding.to_dict() for finding in findings]}


def as_sarif(findings: Sequence[Finding]) -> dict[str, Any]:
    rules = [
        {
            "id": rule_id,
            "name": rule_id,
            "shortDescription": {"text": f"{title} with a valid checksum"},
            "defaultConfiguration": {"level": "error"},
        }
        for rule_id, title in RULES.values()
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "llavero scan", "version": __version__, "rules": rules}
                },
                "results": [_result(finding) for finding in findings],
            }
        ],
    }


def describe(finding: Finding) -> str:
    """One line for people: what was found, and to which key it belongs when known."""
    what = f"{RULES[finding.kind][1]} {finding.masked}"
    if finding.key_id is not None:
        what += f" (key {finding.key_id}, project {finding.project}, {finding.state})"
    return what


def _result(finding: Finding) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": RULES[finding.kind][0],
        "level": "error",
        "message": {"text": describe(finding)},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": finding.path},
                    "region": {"startLine": finding.line},
                }
            }
        ],
    }
    properties = {k: v for k, v in finding.to_dict().items() if k not in ("path", "line")}
    result["properties"] = properties
    return result
