"""`/api/v1/users`: the caller's own account, and administration for admins.

No `from __future__ import annotations` here: FastAPI must see the route signatures'
types, and `Users`/`CurrentAccount` are local to `build_router`.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from core.db import Page, PageParams, page_params
from core.errors import problem_responses
from core.identity import CurrentPrincipal, Principal, require_role
from plugins.user.api import EMAIL_MAX_LENGTH, Role, User
from plugins.user.schemas import (
    AdminUpdate,
    MemberCounts,
    ProfileUpdate,
    UserCreate,
    UserFilter,
)
from plugins.user.service import UserService

Admin = Annotated[Principal, Depends(require_role("admin"))]


async def user_filter(
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=EMAIL_MAX_LENGTH,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="Email prefix or name substring, ignoring case.",
        ),
    ] = None,
    role: Annotated[Role | None, Query(description="Only users with this role.")] = None,
    is_active: Annotated[bool | None, Query(description="Only (in)active users.")] = None,
    include_deleted: Annotated[bool, Query(description="Include soft-deleted users.")] = False,
) -> UserFilter:
    return UserFilter(q=q, role=role, is_active=is_active, include_deleted=include_deleted)


def build_router(container: Any) -> APIRouter:
    router = APIRouter()

    async def users() -> UserService:
        return container.service()  # type: ignore[no-any-return]

    Users = Annotated[UserService, Depends(users)]

    async def current_account(principal: CurrentPrincipal, users: Users) -> User:
        """The caller's account: the row the account check read for this request (it goes
        with the principal), or, for a principal no check confirmed, read now."""
        if isinstance(principal.account, User) and principal.account.id == principal.user_id:
            return principal.account
        return await users.get(principal.user_id)

    CurrentAccount = Annotated[User, Depends(current_account)]

    # The caller's own account

    @router.get(
        "/me", summary="Your account", response_model=User, responses=problem_responses(401)
    )
    async def read_me(account: CurrentAccount) -> User:
        """The caller's account."""
        return account

    @router.patch(
        "/me",
        summary="Change your profile",
        response_model=User,
        responses=problem_responses(400, 401),
    )
    async def update_me(data: ProfileUpdate, principal: CurrentPrincipal, users: Users) -> User:
        """Change the caller's profile. Role, status and email are not the caller's to set."""
        return await users.update(principal.user_id, data.changes())

    @router.delete(
        "/me",
        status_code=204,
        summary="Delete your account",
        responses=problem_responses(401, 409),
    )
    async def delete_me(principal: CurrentPrincipal, users: Users) -> Response:
        """Soft-delete the caller's account (409 for the last active admin)."""
        await users.delete(principal.user_id)
        return Response(status_code=204)

    # Administration

    @router.get(
        "",
        summary="List users (admins)",
        response_model=Page[User],
        responses=problem_responses(401, 403),
    )
    async def list_users(
        _: Admin,
        users: Users,
        where: Annotated[UserFilter, Depends(user_filter)],
        page: Annotated[PageParams, Depends(page_params)],
    ) -> Page[User]:
        """Users, newest first, one cursor page at a time (admins only)."""
        return await users.list(where, page)

    @router.post(
        "",
        status_code=201,
        summary="Create a user (admins)",
        response_model=User,
        responses=problem_responses(400, 401, 403, 409),
    )
    async def create_user(data: UserCreate, _: Admin, users: Users) -> User:
        """Create an account (admins only); 409 when the email is in use."""
        return await users.create(data.email, data.name, data.role)

    # Before "/{user_id}", which would otherwise take "stats" for an id.
    @router.get(
        "/stats",
        summary="Count members",
        response_model=MemberCounts,
        responses=problem_responses(401, 403),
    )
    async def count_members(_: Admin, users: Users) -> MemberCounts:
        """Live users (admins only): all of them, and those created since 00:00 UTC on the
        1st of this month, on Monday of this week and today."""
        return await users.count_members()

    @router.get(
        "/{user_id}",
        summary="Read a user",
        response_model=User,
        responses=problem_responses(401, 404),
    )
    async def read_user(user_id: str, principal: CurrentPrincipal, users: Users) -> User:
        """A user: yourself, or anyone for an admin. 404 for everything else."""
        return await users.visible_to(principal, user_id)

    @router.patch(
        "/{user_id}",
        summary="Change a user's name, role or status (admins)",
        response_model=User,
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def update_user(user_id: str, data: AdminUpdate, _: Admin, users: Users) -> User:
        """Change a user's name, role or status (409 for the last active admin)."""
        return await users.update(user_id, data.changes())

    @router.delete(
        "/{user_id}",
        status_code=204,
        summary="Delete a user (admins)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def delete_user(user_id: str, _: Admin, users: Users) -> Response:
        """Soft-delete a user (409 for the last active admin)."""
        await users.delete(user_id)
        return Response(status_code=204)

    @router.post(
        "/{user_id}/restore",
        summary="Restore a deleted user (admins)",
        response_model=User,
        responses=problem_responses(401, 403, 404, 409),
    )
    async def restore_user(user_id: str, _: Admin, users: Users) -> User:
        """Undo a soft delete; 409 when another user has taken the email meanwhile."""
        return await users.restore(user_id)

    return router
