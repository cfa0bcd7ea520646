"""A session factory's own work after each commit of a transaction that wrote
(`AFTER_A_WRITE` in `core.db.unit_of_work`; with a replica it keeps the caller's
read-your-writes mark): never after a transaction that only read, after the callbacks the
transaction queued, whichever way the write went (the ORM's flush, or a Core statement on
the session's connection, as `CoreStatement` sends it). One backend is enough: what is
watched is the statement SQLAlchemy sends, not the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import String, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db import AppSession, CoreStatement
from core.db.unit_of_work import AFTER_A_WRITE, track_writes


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(50))


RENAME = CoreStatement(update(Note).values(text="renamed"))


@pytest.fixture
async def sessions(
    tmp_path: Path,
) -> AsyncIterator[tuple[async_sessionmaker[AppSession], list[str]]]:
    """Sessions whose work after a write notes "after a write" in the list given with them."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    ran: list[str] = []
    track_writes(engine)
    factory = async_sessionmaker(
        engine, class_=AppSession, info={AFTER_A_WRITE: lambda: ran.append("after a write")}
    )
    yield factory, ran
    await engine.dispose()


async def test_a_transaction_that_only_read_runs_no_work_after_a_write(
    sessions: tuple[async_sessionmaker[AppSession], list[str]],
) -> None:
    factory, ran = sessions
    async with factory() as session:
        await session.exec(select(Note))
        session.after_commit(lambda: ran.append("queued"))
        await session.commit()
    assert ran == ["queued"]


async def test_the_work_after_a_write_runs_after_the_queued_callbacks(
    sessions: tuple[async_sessionmaker[AppSession], list[str]],
) -> None:
    factory, ran = sessions
    async with factory() as session:
        session.add(Note(text="first"))  # flushed by the commit
        session.after_commit(lambda: ran.append("queued"))
        await session.commit()
    assert ran == ["queued", "after a write"]


async def test_a_core_statement_on_the_sessions_connection_is_a_write(
    sessions: tuple[async_sessionmaker[AppSession], list[str]],
) -> None:
    factory, ran = sessions
    async with factory() as session:
        await RENAME.execute(session)
        await session.commit()
        await session.exec(select(Note))  # the next transaction only reads
        await session.commit()
    assert ran == ["after a write"]


async def test_a_rolled_back_write_runs_nothing(
    sessions: tuple[async_sessionmaker[AppSession], list[str]],
) -> None:
    factory, ran = sessions
    async with factory() as session:
        await RENAME.execute(session)
        await session.rollback()
        await session.exec(select(Note))
        await session.commit()
    assert ran == []
