"""Member statistics, `GET /api/v1/users/stats`: live users, and those created this month,
this week and today (UTC), counted at an instant the test chooses.

"Now" is the container's `clock`, replaced here; each user's `created_at` is set in the
database, so the counts are checked exactly at their boundaries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dependency_injector import providers
from sqlalchemy import event, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlmodel import col

from core.db import AppSession, new_id
from plugins.user.api import USER_ID_PREFIX
from plugins.user.models import UserRecord
from tests.plugins.user.conftest import USERS, UserApp, as_user
from tests.support.problems import assert_problem

STATS = f"{USERS}/stats"
# A Thursday: the month began on Thursday the 1st, the week on Monday the 12th.
NOW = datetime(2026, 10, 15, 12, 30, tzinfo=UTC)


@contextmanager
def clock_at(users: UserApp, now: datetime) -> Iterator[None]:
    """The app's user service counts as if it were `now`."""
    container = users.app.state.kernel.container_of("user")
    with container.clock.override(providers.Object(lambda: now)):
        container.service.reset()  # the service singleton is rebuilt around the override
        try:
            yield
        finally:
            container.service.reset()


async def created_at(users: UserApp, user: dict[str, Any], when: datetime) -> None:
    """Set when `user` was created, stored as the app stores it (the column's own type)."""
    statement = update(UserRecord).where(col(UserRecord.id) == user["id"])
    async with users.app.state.database.write_engine.begin() as connection:
        await connection.execute(statement.values(created_at=when))


async def made_at(users: UserApp, email: str, when: datetime, **options: Any) -> dict[str, Any]:
    user = await users.create(email, **options)
    await created_at(users, user, when)
    return user


async def stats(users: UserApp, admin: dict[str, Any]) -> dict[str, Any]:
    response = await users.client.get(STATS, headers=as_user(admin))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def at(year: int, month: int, day: int, *time: int) -> datetime:
    """An instant in UTC: `at(2026, 10, 15)` is its midnight, `at(…, 23, 59, 59)` its end."""
    return datetime(year, month, day, *time, tzinfo=UTC)


async def test_each_count_starts_at_midnight_utc_of_its_day(
    users: UserApp, admin: dict[str, Any]
) -> None:
    """Stops: an off-by-one at a boundary (a user of 23:59:59 yesterday counted as today's,
    one of Monday 00:00 missing from the week, one of the 1st 00:00 from the month), a
    week that starts on Sunday, and inactive users left out (they are members)."""
    await created_at(users, admin, at(2026, 1, 1))
    await made_at(users, "september@example.com", at(2026, 9, 30, 23, 59, 59, 999999))
    await made_at(users, "first@example.com", at(2026, 10, 1))
    await made_at(users, "sunday@example.com", at(2026, 10, 11, 23, 59, 59), active=False)
    await made_at(users, "monday@example.com", at(2026, 10, 12))
    await made_at(users, "late@example.com", at(2026, 10, 14, 23, 59, 59))
    await made_at(users, "midnight@example.com", at(2026, 10, 15))

    with clock_at(users, NOW):
        counted = await stats(users, admin)

    assert counted == {"total": 7, "month": 5, "week": 3, "today": 1}


async def test_a_week_that_began_last_month_counts_across_the_first(
    users: UserApp, admin: dict[str, Any]
) -> None:
    """Stops: the week cut off at the 1st, or the month reaching back to the week's Monday.
    Sunday 1 November: the week began on Monday 26 October."""
    await created_at(users, admin, at(2026, 1, 1))
    await made_at(users, "sunday@example.com", at(2026, 10, 25, 23, 59, 59))
    await made_at(users, "monday@example.com", at(2026, 10, 26))
    await made_at(users, "halloween@example.com", at(2026, 10, 31, 23, 59, 59))
    await made_at(users, "first@example.com", at(2026, 11, 1))

    with clock_at(users, at(2026, 11, 1, 0, 0, 1)):
        counted = await stats(users, admin)

    assert counted == {"total": 5, "month": 1, "week": 3, "today": 1}


async def test_soft_deleted_users_are_not_counted_until_restored(
    users: UserApp, admin: dict[str, Any]
) -> None:
    """Stops: deleted accounts inflating every count (or a restored one staying out)."""
    await created_at(users, admin, at(2026, 1, 1))
    gone = await made_at(users, "gone@example.com", at(2026, 10, 15, 8))
    await made_at(users, "stays@example.com", at(2026, 10, 15, 9))
    deleted = await users.client.delete(f"{USERS}/{gone['id']}", headers=as_user(admin))
    assert deleted.status_code == 204

    with clock_at(users, NOW):
        without = await stats(users, admin)
        restored = await users.client.post(f"{USERS}/{gone['id']}/restore", headers=as_user(admin))
        assert restored.status_code == 200, restored.text
        with_it = await stats(users, admin)

    assert without == {"total": 2, "month": 1, "week": 1, "today": 1}
    assert with_it == {"total": 3, "month": 2, "week": 2, "today": 2}


async def test_only_admins_see_the_counts_and_stats_is_not_a_user_id(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    """Stops: anyone learning how many members there are, and `/users/stats` read as the
    user with id "stats" (a 404 for everyone, admins included)."""
    anonymous = await users.client.get(STATS)
    member = await users.client.get(STATS, headers=as_user(alice))
    by_admin = await users.client.get(STATS, headers=as_user(admin))

    assert_problem(anonymous, 401, "core.unauthorized")
    assert_problem(member, 403, "core.forbidden")
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json() == {"total": 2, "month": 2, "week": 2, "today": 2}


async def test_the_route_is_documented_for_admins(users: UserApp) -> None:
    operation = (await users.client.get("/openapi.json")).json()["paths"][STATS]["get"]

    assert operation["summary"] == "Count members"
    assert {"200", "401", "403"} <= set(operation["responses"])
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/MemberCounts"}


async def test_a_wrong_method_names_the_methods_documented_for_stats(
    users: UserApp, admin: dict[str, Any]
) -> None:
    """Stops: a 405 on `/users/stats` offering `/users/{user_id}`'s methods (DELETE,
    PATCH), which the OpenAPI document does not list for this path."""
    for method in ("OPTIONS", "POST", "PUT"):
        response = await users.client.request(method, STATS, headers=as_user(admin))

        assert_problem(response, 405, "core.method_not_allowed")
        assert response.headers["allow"] == "GET"


# -- each count on a session of its own, all four at once ------------------------------------


@dataclass
class SessionLog:
    """What the app's sessions did while the log was on, in order: "count" as a counting
    statement is handed to a session (before it takes a connection), "begin" with the
    driver's connection it took, "end" as it let it go. The log holds on to the sessions
    and connections, so none of them is collected and another one given its id."""

    events: list[tuple[str, Session, Any]] = field(default_factory=list)

    def counting_sessions(self) -> list[Session]:
        return [session for kind, session, _ in self.events if kind == "count"]

    def driver_connection_of(self, session: Session) -> Any:
        return next(c for kind, s, c in self.events if kind == "begin" and s is session)


@asynccontextmanager
async def session_log() -> AsyncIterator[SessionLog]:
    """Every session of the app (`AppSession`), through SQLAlchemy's session events."""
    log = SessionLog()
    sessions = AppSession.sync_session_class

    def began(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
        log.events.append(("begin", session, connection.connection.driver_connection))

    def executed(state: ORMExecuteState) -> None:
        if "count(" in str(state.statement).lower():
            log.events.append(("count", state.session, None))

    def ended(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the session's own transaction, not a savepoint
            log.events.append(("end", session, None))

    hooks = [("after_begin", began), ("do_orm_execute", executed)]
    hooks.append(("after_transaction_end", ended))
    for name, hook in hooks:
        event.listen(sessions, name, hook)
    try:
        yield log
    finally:
        for name, hook in hooks:
            event.remove(sessions, name, hook)


async def test_the_four_counts_run_at_once_each_on_a_session_and_connection_of_its_own(
    users: UserApp, admin: dict[str, Any]
) -> None:
    """Stops: the counts sharing one AsyncSession (not safe across concurrent tasks: on
    PostgreSQL "another operation is in progress", on SQLite results crossing), and counts
    run one after another (four round trips in turn)."""
    async with session_log() as log:
        counted = await stats(users, admin)

    assert counted["total"] == 1
    counting = log.counting_sessions()
    assert len(counting) == 4
    assert len({id(session) for session in counting}) == 4, "two counts shared a session"
    connections = {id(log.driver_connection_of(session)) for session in counting}
    assert len(connections) == 4, "two counts shared a connection"
    # At once: every count was under way before the first of their sessions ended.
    kinds = [kind for kind, session, _ in log.events if any(session is s for s in counting)]
    assert kinds.index("end") > max(i for i, kind in enumerate(kinds) if kind == "count")


# -- each count is one query on an index -----------------------------------------------------


@asynccontextmanager
async def counting_statements(users: UserApp) -> AsyncIterator[list[tuple[str, Any]]]:
    """(SQL, parameters) of the counting statements sent inside the block, as sent."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "count(" in statement.lower():
            sent.append((statement, parameters))

    engine = users.app.state.database.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def query_plan(users: UserApp, statement: str, parameters: Any) -> str:
    """How the database would run `statement`: SQLite's query plan, or PostgreSQL's with
    sequential scans priced out (counting most of a table, a scan costs about what an
    index does; the question is whether an index can answer it)."""
    async with users.app.state.database.write_engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(str(row[-1]) for row in plan)
        await connection.exec_driver_sql("SET enable_seqscan = off")
        plan = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(str(row[0]) for row in plan)


async def fill(users: UserApp, count: int) -> None:
    """`count` users created over the two years before `NOW`, one in ten soft-deleted, then
    the database's statistics gathered: a table whose planner choices mean something."""
    rows = [
        {
            "id": new_id(USER_ID_PREFIX),
            "email": f"member{i}@example.com",
            "email_key": f"member{i}@example.com",
            "name": f"Member {i}",
            "created_at": NOW - timedelta(hours=6 * i),
            "updated_at": NOW,
            "deleted_at": NOW if i % 10 == 0 else None,
        }
        for i in range(1, count + 1)
    ]
    async with users.app.state.database.write_engine.begin() as connection:
        await connection.execute(insert(UserRecord), rows)
        analyze = "ANALYZE" if connection.dialect.name == "sqlite" else 'ANALYZE "user"'
        await connection.exec_driver_sql(analyze)


async def test_each_count_is_one_query_answered_from_an_index(
    users: UserApp, admin: dict[str, Any]
) -> None:
    """Stops: counting members reading the whole table (on a large one, every admin's
    dashboard a full scan), and the index the migration creates going unused."""
    await fill(users, 3000)

    async with counting_statements(users) as sent:
        with clock_at(users, NOW):
            counted = await stats(users, admin)

    assert counted["total"] == 2701  # the admin and the 2700 members not deleted
    assert len(sent) == 4
    plans = [await query_plan(users, statement, parameters) for statement, parameters in sent]
    for plan in plans:
        assert "index" in plan.lower(), plan
        assert "Seq Scan" not in plan, plan
        assert not any(line.strip() == "SCAN user" for line in plan.splitlines()), plan
    ranged = [plan for (statement, _), plan in zip(sent, plans, strict=True) if ">=" in statement]
    assert len(ranged) == 3
    for plan in ranged:
        assert "ix_user_deleted_at_created_at" in plan, plan
