"""docs/plugins.md, the plugin author's guide, against the code it describes: every Python
example compiles, and its table of errors lists exactly the `AppError` subclasses of
`core.errors` with their status and code."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

from core import errors

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
_PYTHON_BLOCK = re.compile(r"^\s*```python\n(.*?)^\s*```", re.DOTALL | re.MULTILINE)
_ERROR_ROW = re.compile(r"^\| `(\w+)` \| (\d{3}) `([\w.]+)` \| `(\1\(.*?\))`", re.MULTILINE)


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def test_every_python_example_compiles() -> None:
    blocks = _PYTHON_BLOCK.findall(guide())
    assert len(blocks) > 20  # the pattern finds them (so this cannot pass vacuously)
    for number, block in enumerate(blocks, 1):
        source = textwrap.dedent(block)  # a block inside a list item is indented
        compile(source, f"<docs/plugins.md python block {number}>", "exec", dont_inherit=True)


def test_the_error_table_lists_every_app_error_with_its_status_and_code() -> None:
    section = guide().split("#### Errors services raise", 1)[1].split("\n#### ", 1)[0]
    documented = {
        name: (int(status), code, signature)
        for name, status, code, signature in _ERROR_ROW.findall(section)
    }
    declared = {
        cls.__name__: cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.AppError) and cls.__module__ == errors.__name__
    }

    shared = set(inspect.signature(errors.AppError.__init__).parameters) - {"self", "detail"}
    assert sorted(documented) == sorted(declared)
    for name, cls in declared.items():
        status, code, signature = documented[name]
        assert (status, code) == (cls.status, cls.code), name
        own = inspect.signature(cls.__init__).parameters.values()
        for parameter in own:
            if parameter.name == "self" or parameter.kind is parameter.VAR_KEYWORD:
                continue
            if cls is not errors.AppError and parameter.name in shared:
                continue  # AppError's keywords, documented once for all: `**kwargs`
            assert parameter.name in signature, f"{name}: {parameter.name} not documented"
