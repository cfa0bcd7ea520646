"""OpenAPI links: how the answer of one operation feeds the next (created id → read it).

Routers declare them in their `responses`; clients and tools (API explorers, stateful
fuzzers) follow them. A link names its target by `operationRef`, a JSON pointer to the
target's path and method in the same document, so it holds whatever operation ids are.
"""

from __future__ import annotations

from typing import Any


def operation_link(
    method: str,
    path: str,
    parameters: dict[str, str] | None = None,
    *,
    description: str | None = None,
) -> dict[str, Any]:
    """A link to `method` `path` (the full path, as in the document: `/api/v1/...`), with
    `parameters` mapping `path.name` / `query.name` to runtime expressions such as
    `$response.body#/id`."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    link: dict[str, Any] = {"operationRef": f"#/paths/{pointer}/{method.lower()}"}
    if parameters:
        link["parameters"] = dict(parameters)
    if description:
        link["description"] = description
    return link


def with_links(
    responses: dict[int | str, dict[str, Any]], status: int, **links: dict[str, Any]
) -> dict[int | str, dict[str, Any]]:
    """`responses` (a route's `responses=`) with `links` added to the `status` response."""
    out = dict(responses)
    entry = dict(out.get(status, {}))
    entry["links"] = {**entry.get("links", {}), **links}
    out[status] = entry
    return out
