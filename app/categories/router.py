from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.categories import service
from app.core.deps import DbSession
from app.core.nobody import Route
from app.core.problems import problem_responses

router = APIRouter(route_class=Route, tags=["categories"])


class CategoryRead(BaseModel):
    slug: str
    label_zh: str
    label_en: str


class CategoryList(BaseModel):
    items: list[CategoryRead]
    next_cursor: None = None


@router.get(
    "/v1/categories", summary="The wish and roster categories", responses=problem_responses(503)
)
async def list_categories(session: DbSession) -> CategoryList:
    rows = await service.list_categories(session)
    return CategoryList(
        items=[CategoryRead(slug=c.slug, label_zh=c.label_zh, label_en=c.label_en) for c in rows]
    )
