"""What a plugin hands above its data-access layer is a DTO or a plain value, never a
table model: records stay between a plugin's services and its repositories.

Every public class of every built-in plugin module except the repositories and the models
themselves is read: the return annotations of its public methods, followed into
containers, generics, pydantic models and dataclasses.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlmodel import Field, SQLModel

import plugins

DATA_ACCESS = {"repository", "models"}


def types_in(hint: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """`hint` and every type it is made of, into the fields of models and dataclasses."""
    seen = set() if seen is None else seen
    if id(hint) in seen:
        return
    seen.add(id(hint))
    yield hint
    args = list(typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        args += hint.__pydantic_generic_metadata__["args"]  # Page[User] → User
        args += [field.annotation for field in hint.model_fields.values()]
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        args += list(typing.get_type_hints(hint).values())
    for arg in args:
        yield from types_in(arg, seen)


def table_models_returned(function: Any) -> list[str]:
    try:
        returned = typing.get_type_hints(function).get("return")
    except NameError:
        # A name imported only for type checking (`typer.Typer` in a hooks class): no table
        # model is, so look for their names in the annotation's text.
        text = str(inspect.get_annotations(function).get("return", ""))
        return sorted(table_model_names() & set(re.findall(r"\w+", text)))
    return sorted(
        kind.__name__
        for kind in types_in(returned)
        if isinstance(kind, type) and hasattr(kind, "__table__")
    )


def table_model_names() -> set[str]:
    found, todo = set(), list(SQLModel.__subclasses__())
    while todo:
        kind = todo.pop()
        todo += kind.__subclasses__()
        if hasattr(kind, "__table__"):
            found.add(kind.__name__)
    return found


def plugin_modules() -> list[str]:
    found = []
    for module in pkgutil.walk_packages(plugins.__path__, "plugins."):
        last = module.name.rsplit(".", 1)[-1]
        if last not in DATA_ACCESS and ".migrations" not in module.name:
            found.append(module.name)
    return found


def public_classes(module_name: str) -> list[type]:
    module = importlib.import_module(module_name)
    return [
        kind
        for name, kind in inspect.getmembers(module, inspect.isclass)
        if kind.__module__ == module_name and not name.startswith("_")
    ]


@pytest.mark.parametrize("module_name", plugin_modules())
def test_no_public_method_hands_out_a_table_model(module_name: str) -> None:
    leaks = {
        f"{kind.__name__}.{name}": models
        for kind in public_classes(module_name)
        if not hasattr(kind, "__table__")
        for name, method in vars(kind).items()
        if inspect.isfunction(method)
        and not name.startswith("_")
        and (models := table_models_returned(method))
    }
    assert leaks == {}


def test_the_services_of_every_built_in_are_read() -> None:
    read = {kind.__name__ for name in plugin_modules() for kind in public_classes(name)}
    assert {"UserService", "AccountDirectory", "AuthService", "UploadService"} <= read


class Row(SQLModel, table=True):
    __tablename__ = "contract_probe_row"
    id: str = Field(primary_key=True)


class Wrapper(BaseModel):
    rows: list[Row]


def test_a_table_model_in_a_return_type_is_found() -> None:
    async def leaky() -> tuple[Row, Path]:
        raise NotImplementedError

    def wrapped() -> Wrapper | None:
        raise NotImplementedError

    def unresolved() -> NotImportedHere | list[Row]:  # type: ignore[name-defined]  # noqa: F821
        raise NotImplementedError

    assert table_models_returned(leaky) == ["Row"]
    assert table_models_returned(wrapped) == ["Row"]
    assert table_models_returned(unresolved) == ["Row"]
