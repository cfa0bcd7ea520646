"""Cursor pagination for HTTP: `?limit=&cursor=` in, `{"items", "next_cursor"}` out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from core.db.ids import ID_MAX_LENGTH, ID_PATTERN
from core.db.repository import Slice

T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    """A page of results; pass `next_cursor` back as `?cursor=` for the next one."""

    items: list[T]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Slice[R], to_item: Callable[[R], T]) -> Page[T]:  # type: ignore[type-var]
        return cls(items=[to_item(row) for row in page.items], next_cursor=page.next_cursor)


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page (1-100).")] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=ID_MAX_LENGTH,
            pattern=ID_PATTERN,
            description="`next_cursor` of the previous page.",
        ),
    ] = None,
) -> PageParams:
    """The `?limit=` and `?cursor=` query parameters; malformed values get a 422."""
    return PageParams(limit=limit, cursor=cursor)
