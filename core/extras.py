"""Optional integrations: what a plugin needs installed once its settings turn one on.

A distribution ships an optional integration as an extra (`pip install 'courtyard[s3]'`),
and the plugin imports the extra's libraries only where the integration runs. What it
needs is declared where it is switched on: the plugin's settings call `require_extra` in
a validator when they ask for the integration. A missing extra is then a settings error
like any other, so it is one line naming the setting and the command that installs it:
at startup, in every `courtyard` command, and in `courtyard plugins --check`, never a
traceback on the first request that needs it.

    @model_validator(mode="after")
    def _check_backend(self) -> Self:
        if self.backend == "s3":
            require_extra("COURTYARD_UPLOAD__BACKEND=s3", "s3", ["aiobotocore", "botocore"])
        return self

The libraries are looked up, not imported: checking costs no memory and no start time.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.util import find_spec


class MissingExtra(ValueError):
    """The configuration asks for an integration whose extra is not installed. A
    ValueError, so that raised in a settings validator it is a settings error."""


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The top-level modules of `modules` that cannot be imported here."""
    return [name for name in modules if find_spec(name.partition(".")[0]) is None]


def require_extra(
    setting: str, extra: str, modules: Iterable[str], *, distribution: str = "courtyard"
) -> None:
    """Raise MissingExtra unless every one of `modules` is installed.

    `setting` is what asked for the integration, as the operator wrote it
    (`COURTYARD_UPLOAD__BACKEND=s3`); `extra` and `distribution` make the install command.
    """
    missing = missing_modules(modules)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtra(
            f"{setting} needs the {extra} extra ({', '.join(missing)} {verb} not installed): "
            f"pip install '{distribution}[{extra}]'"
        )
