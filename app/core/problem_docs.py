"""``/problems/{code}``: the problem ``type`` URIs resolve to a short explanation."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request

from app.core.errors import NotFound
from app.core.i18n import CATALOG, negotiate_language
from app.core.nobody import Route

router = APIRouter(route_class=Route, tags=["problems"], include_in_schema=False)


class ProblemType(BaseModel):
    code: str
    title: str
    description: str


@router.get("/problems/{code}")
async def describe_problem_type(code: str, request: Request) -> ProblemType:
    entry = CATALOG.get(code)
    if entry is None:
        raise NotFound(resource="resource")
    title, detail = entry[negotiate_language(request.headers.get("accept-language"))]
    return ProblemType(code=code, title=title, description=detail)
