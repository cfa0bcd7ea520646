"""A server reads the plugins' revisions in a child process (core/revision_graph.py): the
graph Alembic reads in-process, one line when the revisions cannot be read, and
`/health/ready` saying so while the app keeps serving."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest

from core.kernel import Kernel
from core.migrator import Migrator
from core.revision_graph import MigrationError, migration_locations, read_in_child
from tests.conftest import make_settings
from tests.support.courtyard_cli import PROJECT_ROOT
from tests.support.plugin_selection import ENABLED
from tests.support.problems import assert_problem
from tests.support.served import server_output, serving, wait_until_live

ALPHA_REV = "a1f0c0de0001"
BETA_REV = "b2e0c0de0001"  # depends_on ALPHA_REV


def revision_file(revision: str, down: str | None, *, label: str | None = None) -> str:
    return (
        f"revision = {revision!r}\ndown_revision = {down!r}\n"
        f"branch_labels = {(label,) if label else None!r}\ndepends_on = None\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )


def per_plugin(newest_first: Iterable[tuple[str, str | None]]) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    for revision, plugin in newest_first:
        out.setdefault(plugin, []).append(revision)
    return out


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'courtyard.db'}"


async def test_the_child_reads_the_graph_alembic_reads_in_process(
    main_plugins: None, tmp_path: Path
) -> None:
    kernel = Kernel.build(make_settings(sqlite_url(tmp_path), enabled_plugins="alpha,beta"))
    locations = migration_locations(kernel)

    graph = await read_in_child(locations)

    in_process = Migrator(kernel).graph  # as the commands that migrate make it
    assert (graph.heads, graph.ancestors) == (in_process.heads, in_process.ancestors)
    # Alembic walks the branches in no fixed order, each one newest first.
    assert per_plugin(graph.newest_first) == per_plugin(in_process.newest_first)
    assert (graph.heads["alpha"], graph.heads["beta"]) == (ALPHA_REV, BETA_REV)
    assert graph.ancestors[BETA_REV] == {ALPHA_REV, BETA_REV}  # what beta depends on
    states = graph.branch_states((BETA_REV,), ["alpha", "beta"], ["alpha"])
    # alembic_version keeps beta's row alone once beta's revision is applied: alpha's
    # branch is at its head all the same.
    assert [(s.plugin, s.enabled, s.current, s.at_head) for s in states] == [
        ("alpha", True, ALPHA_REV, True),
        ("beta", False, BETA_REV, True),
    ]


async def test_a_changed_revision_file_is_read_again(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "c1.py").write_text(revision_file("c0000001", None, label="ghost"))
    assert dict((await read_in_child({"ghost": versions})).heads) == {"ghost": "c0000001"}

    (versions / "c2.py").write_text(revision_file("c0000002", "c0000001"))

    graph = await read_in_child({"ghost": versions})
    assert dict(graph.heads) == {"ghost": "c0000002"}
    assert graph.orphaned(("c0000002", "gone00000001")) == ("gone00000001",)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            revision_file("d0000002", "nosuch000001", label="ghost"),
            "cannot read the plugins' revisions: Revision nosuch000001 referenced from",
        ),
        (
            'raise RuntimeError("this revision cannot be imported")\n',
            "cannot read the plugins' revisions: RuntimeError: this revision cannot be imported",
        ),
    ],
    ids=["missing-down-revision", "fails-to-import"],
)
async def test_revisions_that_cannot_be_read_are_one_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "d2.py").write_text(content)

    with pytest.raises(MigrationError) as caught:
        await read_in_child({"ghost": versions})

    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_server_whose_revisions_cannot_be_read_serves_and_is_not_ready(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    """`courtyard serve` with alpha and beta installed into a folder of the test's own, where
    alpha has a second revision coming after one nobody has."""
    site = Path(shutil.copytree(dists["main"], tmp_path / "site"))
    versions = site / "courtyard_alpha" / "migrations" / "versions"
    (versions / "a2.py").write_text(revision_file("a1f0c0de0002", "nosuch000001"))
    environment = {
        "PYTHONPATH": os.pathsep.join([str(site), str(PROJECT_ROOT)]),
        "COURTYARD_DATABASE_URL": sqlite_url(tmp_path),
        ENABLED: "alpha",
    }
    log = tmp_path / "serve.log"

    with serving(environment, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url) as client:
            ready = await client.get("/health/ready")
            live = await client.get("/health/live")

    body = assert_problem(ready, 503, "core.not_ready")
    assert (
        "cannot read the plugins' revisions: Revision nosuch000001"
        in (body["checks"]["migrations"])
    )
    assert body["checks"]["database"] == "ok"
    assert live.status_code == 200  # the app serves all the same
    reason = "cannot read the plugins' revisions: Revision nosuch000001 referenced from"
    output = server_output(log)
    assert sum(reason in line for line in output.splitlines()) >= 1, output
    assert "Traceback" not in output
