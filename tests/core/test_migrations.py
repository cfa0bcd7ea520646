"""Per-plugin migration branches, on SQLite and PostgreSQL.

In-process tests use the shared install of alpha and beta (`main_plugins`). Everything that
writes revision files runs the real `courtyard` command in a subprocess against its own copy
of that install, so the shared install and this process's imported modules are never touched.
A `courtyard` test puts its database in the state it starts from in process (`Migrator`,
with the shared install's revisions, which are its copy's as long as it added none), and runs
as a subprocess the commands it is about.

The fixtures: alpha owns `alpha_item` (revision a1f0c0de0001, branch "alpha"); beta owns
`beta_note`, with a foreign key into `alpha_item` (revision b2e0c0de0001, branch "beta",
`depends_on` a1f0c0de0001).
"""

from __future__ import annotations

import ast
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.kernel import Kernel
from core.migrator import BranchState, MigrationError, Migrator
from tests.conftest import make_settings
from tests.support.databases import inspect_database
from tests.support.distributions import built_in_plugins

ALPHA_REV = "a1f0c0de0001"
BETA_REV = "b2e0c0de0001"
COURTYARD = Path(sys.executable).parent / "courtyard"

pytestmark = pytest.mark.usefixtures("main_plugins")


# -- looking at the real database ---------------------------------------------------------


async def tables(url: str) -> set[str]:
    return set(await inspect_database(url, lambda c: inspect(c).get_table_names()))


async def columns(url: str, table: str) -> set[str]:
    return {c["name"] for c in await inspect_database(url, lambda c: inspect(c).get_columns(table))}


async def execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def fetch(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(query))).all()]
    finally:
        await engine.dispose()


async def version_rows(url: str) -> set[str]:
    return {row[0] for row in await fetch(url, "SELECT version_num FROM alembic_version")}


def add_item(item_id: str, name: str) -> str:
    return (
        "INSERT INTO alpha_item (id, name, created_at, updated_at) "
        f"VALUES ('{item_id}', '{name}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )


def add_note(note_id: str, item_id: str, note: str) -> str:
    return (
        "INSERT INTO beta_note (id, item_id, text, created_at, updated_at) "
        f"VALUES ('{note_id}', '{item_id}', '{note}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )


def migrator(database_url: str, enabled: str = "alpha,beta") -> Migrator:
    return Migrator(Kernel.build(make_settings(database_url, enabled_plugins=enabled)))


async def at_heads(database_url: str, enabled: str = "alpha,beta") -> Migrator:
    """Set-up: the branches of the `enabled` plugins brought to their heads, as `courtyard db
    upgrade` would (in process); the migrator, for more."""
    m = migrator(database_url, enabled)
    await m.upgrade()
    return m


def by_plugin(states: Iterable[BranchState]) -> dict[str, tuple[bool, str | None, str | None]]:
    """{plugin: (enabled, current revision, head revision)} of the fixture plugins."""
    built_ins = built_in_plugins()
    return {s.plugin: (s.enabled, s.current, s.head) for s in states if s.plugin not in built_ins}


# -- 1. upgrade ---------------------------------------------------------------------------


async def test_upgrade_creates_the_tables_and_reports_every_branch_at_head(database_url):
    m = migrator(database_url)

    await m.upgrade()

    assert {"alpha_item", "beta_note"} <= await tables(database_url)
    assert by_plugin(await m.states()) == {
        "alpha": (True, ALPHA_REV, ALPHA_REV),
        "beta": (True, BETA_REV, BETA_REV),
    }
    assert all(s.at_head for s in await m.states() if s.enabled)


async def test_second_upgrade_changes_nothing(database_url):
    m = migrator(database_url)
    await m.upgrade()
    await execute(database_url, add_item("alp_1", "kept"), add_note("bet_1", "alp_1", "also"))
    versions = await version_rows(database_url)
    before = await tables(database_url)

    await migrator(database_url).upgrade()

    assert await tables(database_url) == before
    assert await version_rows(database_url) == versions
    assert await fetch(database_url, "SELECT id, name FROM alpha_item") == [("alp_1", "kept")]
    assert await fetch(database_url, "SELECT id, text FROM beta_note") == [("bet_1", "also")]


async def test_upgrade_with_only_alpha_enabled_creates_alphas_table(database_url):
    """alpha's revision is a dependency of beta's; it is still alpha's own branch head."""
    m = migrator(database_url, enabled="alpha")

    await m.upgrade()

    found = await tables(database_url)
    assert "alpha_item" in found
    assert "beta_note" not in found
    assert by_plugin(await m.states()) == {
        "alpha": (True, ALPHA_REV, ALPHA_REV),
        "beta": (False, None, BETA_REV),
    }


# -- 2. downgrade -------------------------------------------------------------------------


async def test_downgrade_beta_to_base_and_back(database_url):
    m = migrator(database_url)
    await m.upgrade()
    await execute(database_url, add_item("alp_1", "stays"), add_note("bet_1", "alp_1", "goes"))

    await m.downgrade("beta@base")

    found = await tables(database_url)
    assert "beta_note" not in found
    assert "alpha_item" in found
    assert await fetch(database_url, "SELECT id, name FROM alpha_item") == [("alp_1", "stays")]
    assert by_plugin(await m.states()) == {
        "alpha": (True, ALPHA_REV, ALPHA_REV),
        "beta": (True, None, BETA_REV),
    }

    await m.upgrade()

    assert {"alpha_item", "beta_note"} <= await tables(database_url)
    assert await fetch(database_url, "SELECT id, name FROM alpha_item") == [("alp_1", "stays")]
    assert await fetch(database_url, "SELECT id FROM beta_note") == []
    assert all(s.at_head for s in await m.states() if s.enabled)


async def test_downgrading_alpha_refuses_to_take_the_dependent_beta_branch_down(database_url):
    """beta's revision `depends_on` alpha's: Alembic would drop beta_note with alpha_item, a
    plugin's data lost without anyone asking for it."""
    m = migrator(database_url)
    await m.upgrade()
    await execute(database_url, add_item("alp_1", "kept"), add_note("bet_1", "alp_1", "kept"))
    versions = await version_rows(database_url)

    with pytest.raises(MigrationError) as caught:
        await m.downgrade("alpha@base")

    assert str(caught.value) == (
        "downgrading alpha@base would also downgrade the branches of beta, which depend on "
        "its revisions: use --cascade to downgrade them too"
    )
    assert {"alpha_item", "beta_note"} <= await tables(database_url)
    assert await version_rows(database_url) == versions
    assert await fetch(database_url, "SELECT id, text FROM beta_note") == [("bet_1", "kept")]


async def test_downgrading_alpha_with_cascade_takes_the_dependent_beta_branch_down_too(
    database_url,
):
    """beta_note has a foreign key into alpha_item: it cannot outlive alpha's branch."""
    m = migrator(database_url)
    await m.upgrade()

    moved = await m.downgrade("alpha@base", cascade=True)

    assert [(s.plugin, s.current) for s in moved] == [("alpha", None), ("beta", None)]
    found = await tables(database_url)
    assert "alpha_item" not in found
    assert "beta_note" not in found
    assert by_plugin(await m.states()) == {
        "alpha": (True, None, ALPHA_REV),
        "beta": (True, None, BETA_REV),
    }

    await m.upgrade()

    assert {"alpha_item", "beta_note"} <= await tables(database_url)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("beta", "downgrade target 'beta' must be <plugin>@<revision>"),
        ("@base", "downgrade target '@base' must be <plugin>@<revision>"),
        ("beta@", "downgrade target 'beta@' must be <plugin>@<revision>"),
        ("nosuch@base", "plugin 'nosuch' is not installed"),
        ("beta@nosuch", "'nosuch'"),
    ],
)
async def test_malformed_downgrade_target_is_a_one_line_error(database_url, target, expected):
    m = migrator(database_url)
    await m.upgrade()
    versions = await version_rows(database_url)

    with pytest.raises(MigrationError) as caught:
        await m.downgrade(target)

    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert {"alpha_item", "beta_note"} <= await tables(database_url)
    assert await version_rows(database_url) == versions


# -- 3. disabling and re-enabling a migrated plugin ----------------------------------------


async def test_disabled_plugin_keeps_its_tables_while_the_others_upgrade(database_url):
    await migrator(database_url).upgrade()
    await execute(database_url, add_item("alp_1", "item"), add_note("bet_1", "alp_1", "note"))

    alpha_only = migrator(database_url, enabled="alpha")
    await alpha_only.upgrade()

    assert {"alpha_item", "beta_note"} <= await tables(database_url)
    assert await fetch(database_url, "SELECT id, item_id, text FROM beta_note") == [
        ("bet_1", "alp_1", "note")
    ]
    assert by_plugin(await alpha_only.states()) == {
        "alpha": (True, ALPHA_REV, ALPHA_REV),
        "beta": (False, BETA_REV, BETA_REV),
    }


async def test_reenabled_plugin_is_upgraded_from_where_it_stopped(database_url):
    await migrator(database_url).upgrade()
    await execute(database_url, add_item("alp_1", "item"))
    await migrator(database_url).downgrade("beta@base")

    alpha_only = migrator(database_url, enabled="alpha")
    await alpha_only.upgrade()
    assert "beta_note" not in await tables(database_url)
    assert by_plugin(await alpha_only.states())["beta"] == (False, None, BETA_REV)

    both = migrator(database_url)
    await both.upgrade()

    assert {"alpha_item", "beta_note"} <= await tables(database_url)
    assert await fetch(database_url, "SELECT id FROM alpha_item") == [("alp_1",)]
    assert by_plugin(await both.states()) == {
        "alpha": (True, ALPHA_REV, ALPHA_REV),
        "beta": (True, BETA_REV, BETA_REV),
    }


# -- 4. /health/ready ---------------------------------------------------------------------


async def test_ready_names_the_plugin_whose_branch_is_behind(database_url, app_client, caplog):
    caplog.set_level(logging.WARNING, logger="courtyard.health")
    async with app_client(enabled_plugins="alpha,beta") as client:
        assert (await client.get("/health/ready")).status_code == 200
        await migrator(database_url).downgrade("beta@base")

        behind = await client.get("/health/ready")

        assert behind.status_code == 503, behind.text
        assert behind.headers["content-type"].startswith("application/problem+json")
        body = behind.json()
        assert "migrations" in body["detail"]
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["migrations"] != "ok"
        assert "beta" in body["checks"]["migrations"]
        assert "alpha" not in body["checks"]["migrations"]
        assert any("beta" in r.getMessage() for r in caplog.records)

        await migrator(database_url).upgrade()

        again = await client.get("/health/ready")
        assert again.status_code == 200, again.text
        assert again.json()["checks"]["migrations"] == "ok"


async def test_ready_reports_a_never_migrated_plugin(app_client):
    async with app_client(enabled_plugins="alpha", upgrade=False) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503, response.text
    assert "alpha" in response.json()["checks"]["migrations"]


async def test_ready_ignores_the_branch_of_a_disabled_plugin(database_url, app_client):
    await migrator(database_url).upgrade()
    await migrator(database_url).downgrade("beta@base")

    async with app_client(enabled_plugins="alpha") as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200, response.text
    assert response.json()["checks"]["migrations"] == "ok"


# -- 5./6. the real `courtyard db` command against its own install --------------------------


@pytest.fixture
def pristine_site(dists: dict[str, Path]) -> Path:
    """alpha and beta as pip installed them for the session (`main_plugins`); tests work on
    copies, never on it."""
    return dists["main"]


class Cli:
    """Runs `courtyard …` as a user would, on one copy of the install and one database."""

    def __init__(self, site: Path, database_url: str, cwd: Path) -> None:
        self.site = site
        self.database_url = database_url
        self.cwd = cwd

    def versions(self, plugin: str) -> Path:
        return self.site / f"courtyard_{plugin}" / "migrations" / "versions"

    def revision_files(self, plugin: str) -> set[Path]:
        return set(self.versions(plugin).glob("*.py"))

    def run(self, *args: str, enabled: str = "alpha,beta") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
        env.update(PYTHONPATH=str(self.site), COURTYARD_DATABASE_URL=self.database_url)
        env["COURTYARD_ENABLED_PLUGINS"] = enabled
        return subprocess.run(
            [str(COURTYARD), *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str, enabled: str = "alpha,beta") -> str:
        result = self.run(*args, enabled=enabled)
        assert result.returncode == 0, f"courtyard {' '.join(args)}:\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def fails(self, *args: str, enabled: str = "alpha,beta") -> str:
        """The one-line error of a command that must fail cleanly."""
        result = self.run(*args, enabled=enabled)
        assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("courtyard: error: ")
        return lines[0]

    def rows(self, *args: str, enabled: str = "alpha,beta") -> list[dict[str, str]]:
        """The table a command prints, without the built-in plugins' rows."""
        built_ins = built_in_plugins()
        rows = parse_table(self.ok(*args, enabled=enabled))
        return [row for row in rows if row.get("PLUGIN", row.get("NAME")) not in built_ins]


@pytest.fixture
def cli(pristine_site: Path, database_url: str, tmp_path: Path) -> Cli:
    site = tmp_path / "site"
    # Without the bytecode this process (or another) may be writing there as it is copied.
    shutil.copytree(pristine_site, site, ignore=shutil.ignore_patterns("__pycache__"))
    return Cli(site, database_url, tmp_path)


def parse_table(output: str) -> list[dict[str, str]]:
    """The rows of a `core.cli.output.table` (columns start where their headers start)."""
    header, *lines = [line for line in output.splitlines() if line.strip()]
    found = list(re.finditer(r"\S+(?: \S+)*", header))  # headers are 2+ spaces apart
    names = [m.group() for m in found]
    starts = [m.start() for m in found]
    bounds = [*starts[1:], None]
    return [
        {n: line[s:e].strip() for n, s, e in zip(names, starts, bounds, strict=True)}
        for line in lines
    ]


def revision_module(path: Path) -> dict[str, Any]:
    return runpy.run_path(str(path))


def body(path: Path, function: str) -> list[ast.stmt]:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return node.body
    raise AssertionError(f"{path.name} has no {function}()")


def new_revision(cli: Cli, plugin: str, before: set[Path], output: str) -> Path:
    created = cli.revision_files(plugin) - before
    assert len(created) == 1, created
    path = created.pop()
    assert f"wrote {path}" in output
    return path


def write_revision(cli: Cli, plugin: str, revision: str, down: str, up: str, down_: str) -> None:
    """A revision a newer release of `plugin` would ship."""
    (cli.versions(plugin) / f"{revision}_next.py").write_text(
        f'"""next {plugin} release"""\n\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {revision!r}\n"
        f"down_revision = {down!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        f"def upgrade() -> None:\n    {up}\n\n\n"
        f"def downgrade() -> None:\n    {down_}\n"
    )


def add_column(table: str, column: str) -> str:
    return (
        f"with op.batch_alter_table({table!r}) as batch:\n"
        f"        batch.add_column(sa.Column({column!r}, sa.String(), nullable=True))"
    )


def drop_column(table: str, column: str) -> str:
    return f"with op.batch_alter_table({table!r}) as batch:\n        batch.drop_column({column!r})"


async def test_cli_upgrade_current_history_and_downgrade(cli, database_url):
    upgraded = cli.ok("db", "upgrade")
    assert upgraded.splitlines() == [
        "upgrading alpha → head",
        "upgrading beta → head",
        f"upgraded: alpha (base → {ALPHA_REV}), beta (base → {BETA_REV})",
    ]
    assert cli.ok("db", "upgrade").splitlines() == ["already at head: alpha, beta"]

    assert cli.rows("db", "current") == [
        {"PLUGIN": "alpha", "ENABLED": "yes", "CURRENT": ALPHA_REV, "HEAD": ALPHA_REV,
         "STATE": "at head"},
        {"PLUGIN": "beta", "ENABLED": "yes", "CURRENT": BETA_REV, "HEAD": BETA_REV,
         "STATE": "at head"},
    ]  # fmt: skip
    history = cli.rows("db", "history")
    assert {(r["PLUGIN"], r["REVISION"], r["MESSAGE"]) for r in history} == {
        ("alpha", ALPHA_REV, "create alpha_item"),
        ("beta", BETA_REV, "create beta_note"),
    }
    assert [r["REVISION"] for r in cli.rows("db", "history", "--plugin", "beta")] == [BETA_REV]
    plugins = {r["NAME"]: r["MIGRATION HEAD"] for r in cli.rows("plugins")}
    assert plugins == {"alpha": ALPHA_REV, "beta": BETA_REV}

    assert "downgraded to beta@base" in cli.ok("db", "downgrade", "beta@base")

    assert "beta_note" not in await tables(database_url)
    current = {r["PLUGIN"]: r for r in cli.rows("db", "current")}
    assert (current["alpha"]["CURRENT"], current["alpha"]["STATE"]) == (ALPHA_REV, "at head")
    assert (current["beta"]["CURRENT"], current["beta"]["STATE"]) == ("-", "behind")


BUILT_INS = "user,auth,mail,oauth,upload"
# The built-ins with a migration branch (`mail` has no tables), in plugin order.
MIGRATING = ["user", "auth", "oauth", "upload"]
# oauth's branch `depends_on` auth's head revision: with oauth enabled, no downgrade of
# auth leaves it alone.
WITHOUT_OAUTH = "user,auth,mail,upload"


def built_in_tables(names: set[str]) -> set[str]:
    """The tables of the built-in plugins (`user`, and those of `auth`, `oauth`, `upload`)."""
    return {n for n in names if n == "user" or n.startswith(("auth_", "oauth_", "upload_"))}


async def test_cli_downgrading_a_branch_others_depend_on_is_refused(cli, database_url):
    """Stops: `db downgrade user@base` silently dropping the auth, oauth and upload plugins'
    tables (their branches `depends_on` user's): every password, linked identity and upload
    gone, reported as "downgraded to user@base"."""
    await at_heads(database_url, BUILT_INS)
    before = await tables(database_url)
    versions = await version_rows(database_url)
    assert {"user", "auth_credential", "upload_file"} <= before

    line = cli.fails("db", "downgrade", "user@base", enabled=BUILT_INS)

    assert line == (
        "courtyard: error: downgrading user@base would also downgrade the branches of auth, "
        "oauth, upload, which depend on its revisions: use --cascade to downgrade them too"
    )
    assert await tables(database_url) == before
    assert await version_rows(database_url) == versions


async def test_cli_downgrade_with_cascade_names_every_branch_it_took_down(cli, database_url):
    """Stops: an operator who asked for the cascade not being told which plugins lost their
    tables, and shows a following upgrade brings every branch back."""
    await at_heads(database_url, BUILT_INS)
    before = await tables(database_url)

    output = cli.ok("db", "downgrade", "user@base", "--cascade", enabled=BUILT_INS)

    assert output.splitlines() == [
        "downgraded auth → base",
        "downgraded oauth → base",
        "downgraded upload → base",
        "downgraded user → base",
        "downgraded to user@base",
    ]
    assert built_in_tables(await tables(database_url)) == set()

    upgraded = cli.ok("db", "upgrade", enabled=BUILT_INS).splitlines()[-1]
    assert re.fullmatch(
        r"upgraded: user \(base → \w+\), auth \(base → \w+\), oauth \(base → \w+\), "
        r"upload \(base → \w+\)",
        upgraded,
    ), upgraded
    assert await tables(database_url) == before
    current = cli.run("db", "current", enabled=BUILT_INS).stdout
    states = {r["PLUGIN"]: r["STATE"] for r in parse_table(current)}
    assert [states[name] for name in MIGRATING] == ["at head"] * 4
    assert "mail" not in states


@pytest.mark.parametrize(
    ("target", "enabled"),
    [
        ("auth@base", WITHOUT_OAUTH),
        ("auth@-2", WITHOUT_OAUTH),  # auth's head, b41c7d2e0003, has nothing to undo
        ("upload@base", BUILT_INS),
    ],
)
async def test_cli_downgrade_that_leaves_the_other_branches_alone_needs_no_cascade(
    cli, database_url, target, enabled
):
    """Stops: the refusal getting in the way of a downgrade no other branch depends on."""
    await at_heads(database_url, enabled)
    before = await tables(database_url)
    plugin = target.partition("@")[0]

    output = cli.ok("db", "downgrade", target, enabled=enabled)

    assert output.splitlines()[-1] == f"downgraded to {target}"
    assert [line.split(" → ")[0] for line in output.splitlines()[:-1]] == [f"downgraded {plugin}"]
    assert "user" in await tables(database_url)
    assert await tables(database_url) < before


async def test_cli_errors_are_one_line(cli, database_url):
    await at_heads(database_url)

    assert "beta@base" in cli.fails("db", "downgrade", "beta")
    assert "'nosuch'" in cli.fails("db", "downgrade", "nosuch@base")
    assert "'nosuch'" in cli.fails("db", "history", "--plugin", "nosuch")
    assert "'nosuch'" in cli.fails("db", "revision", "--plugin", "nosuch", "-m", "x")
    assert "'beta'" in cli.fails("db", "revision", "--plugin", "beta", "-m", "x", enabled="alpha")
    assert cli.revision_files("beta") == {cli.versions("beta") / f"{BETA_REV}_create_beta_note.py"}


async def test_cli_broken_revision_file_is_a_one_line_error(cli, database_url):
    write_revision(cli, "beta", "b2e0c0de0002", "deadbeef0000", "pass", "pass")

    assert "deadbeef0000" in cli.fails("db", "upgrade")
    assert "deadbeef0000" in cli.fails("db", "current")
    assert await tables(database_url) <= {"alembic_version"}


async def _drift(database_url: str) -> None:
    """Differences from the models in alpha's table, in beta's and outside any plugin."""
    await execute(
        database_url,
        "DROP TABLE beta_note",
        "ALTER TABLE alpha_item ADD COLUMN legacy_flag INTEGER",
        "CREATE TABLE legacy_stuff (id INTEGER PRIMARY KEY)",
    )


async def test_cli_autogenerate_for_alpha_compares_only_alphas_tables(cli, database_url):
    await at_heads(database_url)
    await _drift(database_url)
    before = cli.revision_files("alpha")

    output = cli.ok("db", "revision", "--plugin", "alpha", "-m", "alpha check", "--autogenerate")

    path = new_revision(cli, "alpha", before, output)
    module = revision_module(path)
    assert module["down_revision"] == ALPHA_REV
    assert not module["branch_labels"]
    source = path.read_text()
    assert re.search(r"drop_column\((?:'alpha_item', )?'legacy_flag'\)", source), source
    assert "beta_note" not in source
    assert "legacy_stuff" not in source

    cli.ok("db", "upgrade")
    assert "legacy_flag" not in await columns(database_url, "alpha_item")
    assert "legacy_stuff" in await tables(database_url)
    cli.ok("db", "downgrade", "alpha@-1")
    assert "legacy_flag" in await columns(database_url, "alpha_item")


async def test_cli_autogenerate_for_beta_compares_only_betas_tables(cli, database_url):
    await at_heads(database_url)
    await _drift(database_url)
    before = cli.revision_files("beta")

    output = cli.ok("db", "revision", "--plugin", "beta", "-m", "beta check", "--autogenerate")

    path = new_revision(cli, "beta", before, output)
    module = revision_module(path)
    assert module["down_revision"] == BETA_REV
    assert not module["branch_labels"]
    source = path.read_text()
    assert "op.create_table('beta_note'" in source
    assert "legacy_flag" not in source
    assert "legacy_stuff" not in source


async def test_cli_autogenerate_for_alpha_while_beta_is_behind(cli, database_url):
    """beta's table is missing but its model is loaded: alpha's revision must not care."""
    await (await at_heads(database_url)).downgrade("beta@base")
    await execute(database_url, "CREATE TABLE legacy_stuff (id INTEGER PRIMARY KEY)")
    before = cli.revision_files("alpha")

    output = cli.ok("db", "revision", "--plugin", "alpha", "-m", "alpha check", "--autogenerate")

    path = new_revision(cli, "alpha", before, output)
    assert revision_module(path)["down_revision"] == ALPHA_REV
    for function in ("upgrade", "downgrade"):
        assert all(isinstance(s, ast.Pass) for s in body(path, function)), path.read_text()


async def test_cli_autogenerate_refuses_when_the_plugins_own_branch_is_behind(cli, database_url):
    await (await at_heads(database_url)).downgrade("beta@base")
    before = cli.revision_files("beta")

    error = cli.fails("db", "revision", "--plugin", "beta", "-m", "x", "--autogenerate")

    assert "up to date" in error or "head" in error
    assert cli.revision_files("beta") == before
    assert "beta_note" not in await tables(database_url)


async def test_cli_manual_revision_extends_the_plugins_branch(cli, database_url):
    await at_heads(database_url)
    before = cli.revision_files("beta")

    output = cli.ok("db", "revision", "--plugin", "beta", "-m", "add mood")

    path = new_revision(cli, "beta", before, output)
    module = revision_module(path)
    new = module["revision"]
    assert module["down_revision"] == BETA_REV
    assert not module["branch_labels"]
    assert [type(s) for s in body(path, "upgrade")] == [ast.Pass]
    assert cli.revision_files("alpha") == {
        cli.versions("alpha") / f"{ALPHA_REV}_create_alpha_item.py"
    }

    history = cli.rows("db", "history", "--plugin", "beta")
    assert [(r["REVISION"], r["DOWN"], r["MESSAGE"]) for r in history] == [
        (new, BETA_REV, "add mood"),
        (BETA_REV, "base", "create beta_note"),
    ]
    assert {r["NAME"]: r["MIGRATION HEAD"] for r in cli.rows("plugins")}["beta"] == new
    current = {r["PLUGIN"]: r for r in cli.rows("db", "current")}
    assert (current["beta"]["CURRENT"], current["beta"]["HEAD"]) == (BETA_REV, new)
    assert current["beta"]["STATE"] == "behind"

    # The author fills the revision in; upgrade and downgrade run it both ways.
    source = path.read_text()
    source = source.replace(
        "def upgrade() -> None:\n    pass",
        f"def upgrade() -> None:\n    {add_column('beta_note', 'mood')}",
    ).replace(
        "def downgrade() -> None:\n    pass",
        f"def downgrade() -> None:\n    {drop_column('beta_note', 'mood')}",
    )
    path.write_text(source)

    cli.ok("db", "upgrade")
    assert "mood" in await columns(database_url, "beta_note")
    current = {r["PLUGIN"]: r for r in cli.rows("db", "current")}
    assert (current["beta"]["CURRENT"], current["beta"]["STATE"]) == (new, "at head")

    cli.ok("db", "downgrade", "beta@-1")
    assert "mood" not in await columns(database_url, "beta_note")
    current = {r["PLUGIN"]: r for r in cli.rows("db", "current")}
    assert current["beta"]["CURRENT"] == BETA_REV


async def test_cli_reenabled_plugin_catches_up_after_the_others_moved_on(cli, database_url):
    """beta is disabled at its first revision while alpha and beta both ship a new one."""
    await at_heads(database_url)
    await execute(database_url, add_item("alp_1", "item"), add_note("bet_1", "alp_1", "note"))
    write_revision(
        cli, "alpha", "a1f0c0de0002", ALPHA_REV,
        add_column("alpha_item", "color"), drop_column("alpha_item", "color"),
    )  # fmt: skip
    write_revision(
        cli, "beta", "b2e0c0de0002", BETA_REV,
        add_column("beta_note", "mood"), drop_column("beta_note", "mood"),
    )  # fmt: skip

    upgraded = cli.ok("db", "upgrade", enabled="alpha")

    assert upgraded.splitlines() == [
        "upgrading alpha → head",
        f"upgraded: alpha ({ALPHA_REV} → a1f0c0de0002)",
    ]
    assert "color" in await columns(database_url, "alpha_item")
    assert "mood" not in await columns(database_url, "beta_note")
    assert await fetch(database_url, "SELECT id, text FROM beta_note") == [("bet_1", "note")]
    current = {r["PLUGIN"]: r for r in cli.rows("db", "current", enabled="alpha")}
    assert current["alpha"] == {
        "PLUGIN": "alpha", "ENABLED": "yes", "CURRENT": "a1f0c0de0002",
        "HEAD": "a1f0c0de0002", "STATE": "at head",
    }  # fmt: skip
    assert current["beta"] == {
        "PLUGIN": "beta", "ENABLED": "no", "CURRENT": BETA_REV,
        "HEAD": "b2e0c0de0002", "STATE": "behind",
    }  # fmt: skip

    upgraded = cli.ok("db", "upgrade")

    assert upgraded.splitlines() == [
        "upgrading beta → head",
        f"upgraded: beta ({BETA_REV} → b2e0c0de0002)",
        "already at head: alpha",
    ]
    assert "mood" in await columns(database_url, "beta_note")
    assert await fetch(database_url, "SELECT id, text FROM beta_note") == [("bet_1", "note")]
    assert await fetch(database_url, "SELECT id, name FROM alpha_item") == [("alp_1", "item")]
    current = {r["PLUGIN"]: (r["CURRENT"], r["STATE"]) for r in cli.rows("db", "current")}
    assert current == {"alpha": ("a1f0c0de0002", "at head"), "beta": ("b2e0c0de0002", "at head")}
