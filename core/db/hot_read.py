"""`HotRead`: a one-row read that runs on nearly every request, at driver speed.

An authenticated request reads its caller's account before anything else. Through
SQLAlchemy that read costs several times what the driver needs for it (an execution
context, a result wrapper, greenlet switches on top of the checkout). A `HotRead` compiles
its statement once per dialect and, on PostgreSQL, hands the SQL straight to the pooled
asyncpg connection (which prepares it once per connection), applying the columns' own
bind and result processing, so values come out exactly as SQLAlchemy would give them. On
other databases it runs through SQLAlchemy as usual. The connection comes from, and goes
back to, the engine's pool either way (pinged first if it sat idle); no transaction is
opened. A driver error is raised as SQLAlchemy's `DBAPIError`, like any other query's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bound parameters, in the order the SQL numbers them
    defaults: Mapping[str, Any]  # the values bound in the statement itself
    binds: tuple[Processor, ...]
    columns: tuple[str, ...]
    results: tuple[Processor, ...]


class HotRead:
    """`await HotRead(select(...)).first(engine, name=value)` → the first row as a mapping
    (or None). The statement's parameters are `bindparam(name)`s."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    async def first(self, engine: AsyncEngine, **params: Any) -> Mapping[str, Any] | None:
        dialect = engine.dialect
        async with engine.connect() as connection:
            if dialect.driver != "asyncpg":
                row = (await connection.execute(self.statement, params)).first()
                return row._mapping if row is not None else None
            compiled = self._compiled_for(dialect)
            values = {**compiled.defaults, **params}
            arguments = [
                value if bind is None else bind(value)
                for value, bind in zip(
                    (values[name] for name in compiled.names), compiled.binds, strict=True
                )
            ]
            driver: Any = (await connection.get_raw_connection()).driver_connection
            try:
                record = await driver.fetchrow(compiled.sql, *arguments)
            except Exception as error:
                # Told apart as SQLAlchemy's own errors are (an outage is a 503), and a
                # connection the server dropped never goes back to the pool.
                lost = driver.is_closed()
                if lost:
                    await connection.invalidate()
                raise DBAPIError(compiled.sql, None, error, connection_invalidated=lost) from error
        if record is None:
            return None
        return {
            name: value if result is None else result(value)
            for name, value, result in zip(compiled.columns, record, compiled.results, strict=True)
        }

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        known = self._compiled.get(dialect.name)
        if known is None:
            known = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return known


def _compile(statement: Select[Any], dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    columns = tuple(str(column.key) for column in statement.selected_columns)
    return _Compiled(
        sql=compiled.string,
        names=names,
        defaults={name: value for name, value in compiled.params.items() if value is not None},
        binds=tuple(compiled.binds[name].type.bind_processor(dialect) for name in names),
        columns=columns,
        results=tuple(
            column.type.result_processor(dialect, None) for column in statement.selected_columns
        ),
    )
