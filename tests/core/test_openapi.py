from __future__ import annotations

import json
from pathlib import Path

from app.main import create_app
from tests.conftest import make_settings

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    generated = create_app(make_settings("sqlite:///unused.db")).openapi()
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == generated, (
        "openapi/openapi.json drifts from the app: run `make openapi` and commit the result"
    )


def test_every_operation_has_a_stable_id_and_documents_its_problems() -> None:
    document = create_app(make_settings("sqlite:///unused.db")).openapi()
    operation_ids = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            operation_ids.append(operation["operationId"])
            assert "__" not in operation["operationId"], (path, method)
            errors = [status for status in operation["responses"] if status.startswith(("4", "5"))]
            assert errors, f"{method.upper()} {path} documents no error response"
    assert len(operation_ids) == len(set(operation_ids))
