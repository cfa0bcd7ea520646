"""Shell completion of `courtyard`, through the real console script: the options that
install or show it, the script it prints, and the completions that script asks for
(core commands, and the command groups of the enabled plugins)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.courtyard_cli import run_courtyard

BASH_HOOK = "complete -o default -F _courtyard_completion courtyard"


def courtyard(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    database = {"COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    return run_courtyard(*args, cwd=tmp_path, env={**database, **env})


def completions(tmp_path: Path, line: str, **env: str) -> list[str]:
    """What bash offers after `line` (the last word being completed), asked the way the
    script `--show-completion bash` prints asks it."""
    words = line.split(" ")
    result = courtyard(
        tmp_path,
        _COURTYARD_COMPLETE="complete_bash",
        COMP_WORDS=line,
        COMP_CWORD=str(len(words) - 1),
        **env,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout.split()


def test_help_offers_to_install_or_show_completion(tmp_path: Path) -> None:
    result = courtyard(tmp_path, "--help")

    assert result.returncode == 0, result.stderr
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "bad-configuration"])
def test_show_completion_prints_the_bash_script_whatever_the_configuration(
    tmp_path: Path, configured: bool
) -> None:
    """Stops: completion that cannot be set up before the app is configured (a shell's
    start-up files are written once, on a machine that may not be configured yet)."""
    env = {} if configured else {"COURTYARD_DB_POOL_SIZE": "0"}

    result = courtyard(tmp_path, "--show-completion", "bash", **env)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert BASH_HOOK in result.stdout
    assert "_COURTYARD_COMPLETE=complete_bash" in result.stdout


def test_the_script_completes_core_commands_and_plugin_groups(tmp_path: Path) -> None:
    assert completions(tmp_path, "courtyard d") == ["db"]
    assert completions(tmp_path, "courtyard us") == ["users"]  # the user plugin's group
    assert completions(tmp_path, "courtyard users st") == ["stats"]
    assert "downgrade" in completions(tmp_path, "courtyard db ")


def test_a_disabled_plugins_group_is_not_offered(tmp_path: Path) -> None:
    assert completions(tmp_path, "courtyard us", COURTYARD_ENABLED_PLUGINS="mail") == []
