"""`courtyard db revision --autogenerate` writes the `depends_on` of a revision whose tables
point at another plugin's: the revision of that plugin's branch at which the table first
exists (core.migration_dependencies). Without it Alembic writes `depends_on = None`, and
the revision may run before the table it points at exists.

The real console script, on a real install of the `kudos` test plugin (tests/support/
kudos.py), against SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest

from tests.support.courtyard_cli import parse_table, rows_by
from tests.support.databases import tables
from tests.support.kudos import (
    USER_REV,
    courtyard,
    install_kudos,
    ok,
    revision_files,
    revision_module,
    write_first_revision,
)

ENABLED = "user,auth,mail,kudos"
# auth's second revision creates `auth_action_token` (its first creates the other tables).
ACTION_TOKEN_REV = "b41c7d2e0002"

# A table the kudos author adds later, pointing at `user` (which the branch's first
# revision already depends on) and at `auth_action_token`.
THANKS_MODEL = """

class KudosThanks(Entity, table=True):
    __tablename__ = "kudos_thanks"

    id: str = id_field("kth")
    giver_id: str = Field(
        sa_column=Column(String(ID_MAX_LENGTH), ForeignKey("user.id"), nullable=False)
    )
    token_id: str = Field(
        sa_column=Column(
            String(ID_MAX_LENGTH), ForeignKey("auth_action_token.id"), nullable=False
        )
    )
"""


@pytest.fixture(scope="module")
def pristine_kudos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_kudos(tmp_path_factory.mktemp("kudos") / "site")


@pytest.fixture(scope="module")
def pristine_first_revision(pristine_kudos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the install with the first revision of kudos' branch written (for the
    tests that start from it; the first test writes its own)."""
    folder = tmp_path_factory.mktemp("kudos-first")
    site = Path(shutil.copytree(pristine_kudos, folder / "site"))
    write_first_revision(site, f"sqlite+aiosqlite:///{folder / 'scratch.db'}", folder)
    return site


@pytest.fixture
def site(pristine_kudos: Path, tmp_path: Path) -> Path:
    """A copy of the install this test may write revisions into."""
    return Path(shutil.copytree(pristine_kudos, tmp_path / "site"))


@pytest.fixture
def site_with_first_revision(pristine_first_revision: Path, tmp_path: Path) -> Path:
    """A copy of the install with its first revision, this test may write revisions into."""
    return Path(shutil.copytree(pristine_first_revision, tmp_path / "site"))


async def test_first_revision_depends_on_the_user_revision_and_upgrades_from_empty(
    site: Path, database_url: str, tmp_path: Path
) -> None:
    """Stops: a first revision with `depends_on = None`, which Alembic may run before the
    `user` table its foreign keys point at exists, and which lets `user` go without it."""
    run = partial(courtyard, url=database_url, cwd=tmp_path, site=site, enabled=ENABLED)
    path = write_first_revision(site, database_url, tmp_path)

    module = revision_module(path)
    assert module["depends_on"] == USER_REV
    assert module["down_revision"] is None
    assert module["branch_labels"] == ("kudos",)
    kudos_rev = module["revision"]
    assert await tables(database_url) <= {"alembic_version"}  # writing it migrated nothing

    upgraded = ok(run("db", "upgrade", "kudos"))

    # Only kudos was asked for: the user branch came first, as far as kudos needs it.
    assert upgraded.splitlines() == [
        "upgrading kudos → head",
        f"upgraded: user (base → {USER_REV}), kudos (base → {kudos_rev})",
    ]
    assert {"user", "kudos"} <= await tables(database_url)
    current = rows_by(parse_table(ok(run("db", "current"))), "PLUGIN")
    assert (current["kudos"]["CURRENT"], current["kudos"]["STATE"]) == (kudos_rev, "at head")
    assert current["user"]["CURRENT"] == USER_REV

    # The dependency is one Alembic keeps: `user` cannot go while kudos points at it.
    refused = run("db", "downgrade", "user@base")
    assert refused.returncode == 2, refused
    assert refused.stderr.strip() == (
        "courtyard: error: downgrading user@base would also downgrade the branches of "
        "kudos, which depend on its revisions: use --cascade to downgrade them too"
    )
    assert {"user", "kudos"} <= await tables(database_url)


async def test_later_revision_depends_on_the_revision_that_created_the_table_it_points_at(
    site_with_first_revision: Path, database_url: str, tmp_path: Path
) -> None:
    """Stops: a dependency on the wrong revision of the other branch (its first, which
    does not create `auth_action_token`), or naming again one the branch already has."""
    site = site_with_first_revision
    run = partial(courtyard, url=database_url, cwd=tmp_path, site=site, enabled=ENABLED)
    (first_path,) = revision_files(site)
    first = revision_module(first_path)["revision"]
    ok(run("db", "upgrade"))
    models = site / "courtyard_kudos" / "models.py"
    models.write_text(models.read_text() + THANKS_MODEL)
    before = revision_files(site)

    ok(run("db", "revision", "--plugin", "kudos", "-m", "add thanks", "--autogenerate"))

    (path,) = revision_files(site) - before
    module = revision_module(path)
    assert module["down_revision"] == first
    assert module["depends_on"] == ACTION_TOKEN_REV
    assert "op.create_table('kudos_thanks'" in path.read_text()

    upgraded = ok(run("db", "upgrade"))

    assert f"upgraded: kudos ({first} → {module['revision']})" in upgraded.splitlines()
    assert "kudos_thanks" in await tables(database_url)
