"""Checking problem+json answers (RFC 9457) the same way in every test."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is a whole problem document with this status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert body["code"] == code, body
    assert body["type"] == f"/problems/{code}", body
    assert body["title"], body
    assert body["detail"], body
    return body
