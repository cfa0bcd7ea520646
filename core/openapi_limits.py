"""Bounds in the OpenAPI document that are settings, stated as this deployment has them.

A request model is a class, the same in every app, while some of its limits are settings
(the longest display name, `COURTYARD_USER__MAX_NAME_LENGTH`), which the service checks.
Such a field names the setting its bound follows, next to its fixed bound (the most any
deployment may allow, which validation checks first):

    DisplayName = Annotated[
        str,
        Field(max_length=200, json_schema_extra=bounded_by(maxLength="user.max_name_length")),
    ]

and the app's document states the setting's value in its place, so what the document
allows and what the API accepts are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

# The JSON Schema key that carries the references; gone from the finished document.
SETTING_BOUNDS = "x-courtyard-setting-bounds"


def bounded_by(**bounds: str) -> dict[str, Any]:
    """`json_schema_extra` for a field whose JSON Schema keywords (`maxLength`, `minimum`,
    ...) follow plugin settings, each named `"<plugin>.<setting>"`."""
    return {SETTING_BOUNDS: dict(bounds)}


def state_setting_bounds(app: FastAPI, settings: Mapping[str, BaseModel]) -> None:
    """Make `app.openapi()` state the bounds that follow `settings` (plugin settings by
    plugin name) with their values (built on first use, then kept)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            apply_setting_bounds(build(), settings)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def apply_setting_bounds(node: Any, settings: Mapping[str, BaseModel]) -> None:
    """Replace, everywhere in the JSON document `node`, each keyword that follows a
    setting with the setting's value. A setting of a plugin that is not enabled leaves
    the fixed bound; a setting its plugin does not have is a mistake, and raises."""
    if isinstance(node, list):
        for item in node:
            apply_setting_bounds(item, settings)
        return
    if not isinstance(node, dict):
        return
    for keyword, reference in node.pop(SETTING_BOUNDS, {}).items():
        plugin, _, name = reference.partition(".")
        source = settings.get(plugin)
        if source is None:
            continue
        if name not in type(source).model_fields:
            raise ValueError(f"{keyword} follows {reference!r}, which is not a setting")
        node[keyword] = getattr(source, name)
    for value in node.values():
        apply_setting_bounds(value, settings)
