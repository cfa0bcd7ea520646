"""Alembic environment. Run through `courtyard db …` (core.migrator), which passes an open
connection, the plugin whose tables autogenerate may compare, and the owner of each table.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from core.db.model import UTCDateTime, metadata

config = context.config
connection = config.attributes["connection"]
table_owner = config.attributes.get("table_owner", lambda name: None)
target_plugin = config.attributes.get("plugin")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate compares only the tables of the plugin a revision is written for."""
    if target_plugin is None:
        return True
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = name if type_ == "table" else getattr(table, "name", None)
    return table_name is not None and table_owner(table_name) == target_plugin


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write migrations in plain `sa.*` types, independent of the core's Python classes."""
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type(obj).__name__ == "AutoString":  # sqlmodel's str type is a plain VARCHAR
        length = getattr(obj, "length", None)
        return f"sa.String(length={length})" if length else "sa.String()"
    return False


context.configure(
    connection=connection,
    target_metadata=metadata,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)

with context.begin_transaction():
    context.run_migrations()
