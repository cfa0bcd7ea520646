"""No code of ours uses a private (underscore) name of FastAPI, Starlette, SQLAlchemy or
Pydantic: those change in any release without notice, so each use is an upgrade that
breaks quietly. Use the libraries' public API instead.

Read with `ast` from every Python file in core/, plugins/, examples/, bench/ and tests/:

- `from fastapi.dependencies.utils import _get_body_field` (a private name);
- `from sqlalchemy.util._collections import X`, `import sqlalchemy.util._collections`
  (a private module);
- `sqlalchemy.util._foo`, `getattr(util, "_foo")`: a private attribute of something
  imported from the libraries (a module, a class, a function);
- in a class deriving from one of the libraries' classes, a private name its library base
  class has, defined (an override of a private hook) or reached through `self`/`cls`;
- `route._embed_body_fields`, `getattr(statement, "_returning")`: a private attribute of
  any other object (one the libraries handed back), by name: one the libraries' own
  classes use (read from their source) and our code never defines.

That last check goes by name only: an attribute of one of our objects named like one of
the libraries' is not reported, so neither is a library object's attribute of that name.

Ruff's `import-private-name` (PLC2701) is no substitute: it is a preview rule (ruff 0.17),
it sees only imports (no attributes, no overrides), it ignores a name used only in
annotations, and it reports every private import, our own modules' included.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("core", "plugins", "examples", "bench", "tests")
SKIPPED_DIRS = {"__pycache__", "build", "dist", ".venv"}  # generated, git-ignored
LIBRARIES = ("fastapi", "starlette", "sqlalchemy", "pydantic", "pydantic_core")

# The one documented exception. core/db/pool.py's `FairAsyncQueuePool` subclasses
# SQLAlchemy's `AsyncAdaptedQueuePool` and sets `_queue_class` to its `FairQueue`, which
# hands a returned connection to the longest waiter: SQLAlchemy's own queue lets a newcomer
# overtake waiters for seconds under load, and the pool has no public way to choose its
# queue (see that module's docstring; pyproject.toml pins SQLAlchemy's minor version).
ALLOWED: dict[str, set[str]] = {"core/db/pool.py": {"_queue_class"}}

# Public despite the underscore, as documented: SQLAlchemy's `Row` (like a named tuple)
# names its methods so that they never clash with a column's name.
PUBLIC = {"_mapping", "_fields", "_asdict", "_tuple", "_t", "_replace", "_make"}


class Use(NamedTuple):
    line: int
    name: str  # the private name
    what: str


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def python_files() -> Iterator[Path]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if not SKIPPED_DIRS & set(path.relative_to(ROOT).parts):
                yield path


def defined_names(statement: ast.stmt) -> list[str]:
    """The names a statement defines (in a module or a class body)."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        return [target.id for target in statement.targets if isinstance(target, ast.Name)]
    if isinstance(statement, ast.AnnAssign | ast.AugAssign) and isinstance(
        statement.target, ast.Name
    ):
        return [statement.target.id]
    return []


def own_private_names(tree: ast.Module, *, reads: bool) -> set[str]:
    """The private names a module gives its classes, their instances and itself: class and
    module bodies, and `self._x`/`cls._x` (only those assigned, unless `reads`)."""
    names: set[str] = set()
    bodies: list[list[ast.stmt]] = [tree.body]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bodies.append(node.body)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
            and (reads or isinstance(node.ctx, ast.Store))
        ):
            names.add(node.attr)
    names.update(name for body in bodies for statement in body for name in defined_names(statement))
    return set(filter(is_private, names))


@functools.cache
def library_private_names() -> frozenset[str]:
    """Every private attribute name the libraries' classes, objects and modules use."""
    names: set[str] = set()
    for library in LIBRARIES:
        spec = importlib.util.find_spec(library)
        assert spec is not None, library
        assert spec.origin is not None, library
        for path in Path(spec.origin).parent.rglob("*.py*"):
            if path.suffix in (".py", ".pyi"):
                names |= own_private_names(ast.parse(path.read_bytes()), reads=True)
    return frozenset(names)


def dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        outer = dotted(node.value)
        return None if outer is None else f"{outer}.{node.attr}"
    return None


def resolve(qualified: str) -> Any:
    """The object `package.module.Attribute` names, or None if it cannot be imported."""
    module_name, _, attribute = qualified.rpartition(".")
    while module_name:
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attribute = f"{head}.{attribute}"
            continue
        for part in attribute.split("."):
            target = getattr(target, part, None)
        return target
    return None


class Finder(ast.NodeVisitor):
    def __init__(self, theirs: Iterable[str]) -> None:
        self.theirs = set(theirs)  # private names only the libraries' objects have
        self.found: list[Use] = []
        self.bound: dict[str, str] = {}  # local name → the library object it stands for
        self.library_bases: list[list[type]] = []  # per enclosing class

    def flag(self, node: ast.AST, name: str, what: str) -> None:
        self.found.append(Use(getattr(node, "lineno", 0), name, what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] not in LIBRARIES:
                continue
            for part in filter(is_private, parts):
                self.flag(node, part, f"import {alias.name}")
            if alias.asname:
                self.bound[alias.asname] = alias.name
            else:
                self.bound[parts[0]] = parts[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        parts = module.split(".")
        if node.level or parts[0] not in LIBRARIES:
            return
        for part in filter(is_private, parts):
            self.flag(node, part, f"from {module} import ...")
        for alias in node.names:
            if is_private(alias.name):
                self.flag(node, alias.name, f"from {module} import {alias.name}")
            self.bound[alias.asname or alias.name] = f"{module}.{alias.name}"

    def library_name(self, node: ast.expr) -> str | None:
        """`sqlalchemy.util.x` for an expression such as `util.x` bound to a library."""
        chain = dotted(node)
        if chain is None:
            return None
        head, _, rest = chain.partition(".")
        if head not in self.bound:
            return None
        return f"{self.bound[head]}.{rest}" if rest else self.bound[head]

    def overrides(self, name: str) -> bool:
        """Whether `name` is private and the innermost class's library bases have it."""
        bases = self.library_bases[-1] if self.library_bases else []
        return is_private(name) and any(hasattr(base, name) for base in bases)

    def reached(self, node: ast.AST, owner: ast.expr, name: str, what: str) -> None:
        if not is_private(name):
            return
        target = self.library_name(owner)
        is_self = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
        if target is not None:
            self.flag(node, name, what.format(target))
        elif is_self and self.overrides(name):
            self.flag(node, name, what.format(ast.unparse(owner)) + ", a library base's")
        elif name in self.theirs and name not in PUBLIC:
            self.flag(node, name, what.format(ast.unparse(owner)) + ", a library object's")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.reached(node, node.value, node.attr, "{}." + node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
            self.reached(node, node.args[0], name, f"{node.func.id}({{}}, {name!r})")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = []
        for base in node.bases:
            target = self.library_name(base)
            resolved = resolve(target) if target else None
            if isinstance(resolved, type):
                bases.append(resolved)
        for outer in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(outer)
        self.library_bases.append(bases)
        for statement in node.body:
            for name in filter(self.overrides, defined_names(statement)):
                self.flag(statement, name, f"{node.name}.{name}, a library base's")
            self.visit(statement)
        self.library_bases.pop()


def private_uses(source: str, ours: Iterable[str] = ()) -> list[Use]:
    """The uses in `source`; `ours`: private names our own code defines."""
    finder = Finder(library_private_names() - set(ours))
    finder.visit(ast.parse(source))
    return finder.found


@functools.cache
def all_private_uses() -> dict[str, list[Use]]:
    sources = {
        path.relative_to(ROOT).as_posix(): path.read_text("utf-8") for path in python_files()
    }
    ours = set().union(*(own_private_names(ast.parse(s), reads=False) for s in sources.values()))
    return {where: private_uses(source, ours) for where, source in sources.items()}


def test_no_private_name_of_the_web_and_database_libraries_is_used() -> None:
    found = [
        f"{where}:{use.line}: {use.what}"
        for where, uses in all_private_uses().items()
        for use in uses
        if use.name not in ALLOWED.get(where, set())
    ]
    assert found == [], "\n".join(found)


def test_the_documented_exception_is_still_needed() -> None:
    """Once core/db/pool.py no longer sets a private name, its exception goes too."""
    found = all_private_uses()
    for where, names in ALLOWED.items():
        assert {use.name for use in found[where]} == names


def test_each_kind_of_use_is_found() -> None:
    source = """
import fastapi
import sqlalchemy.util._collections
import pydantic_core._pydantic_core as core_
from fastapi.dependencies.utils import _get_body_field, get_flat_dependant
from starlette._utils import is_async_callable
from sqlalchemy import util
from sqlalchemy.pool import AsyncAdaptedQueuePool
from pydantic import BaseModel
from core.app import _assemble  # our own: not this test's business

util._foo
setattr(util, "_bar", 1)
fastapi.routing._IncludedRouter
fastapi.__version__, get_flat_dependant.__name__, core_.ValidationError
route._embed_body_fields, getattr(statement, "_returning"), row._mapping, parts._replace()
thing._mine, getattr(thing, "_mine")

class Pool(AsyncAdaptedQueuePool):
    _queue_class = list
    _mine = 1

    def work(self):
        return self._do_get(), self._mine

class Model(BaseModel):
    _secret: int = 0  # a pydantic private attribute of our own model
"""
    assert [use.what for use in private_uses(source, ours={"_mine"})] == [
        "import sqlalchemy.util._collections",
        "import pydantic_core._pydantic_core",
        "from fastapi.dependencies.utils import _get_body_field",
        "from starlette._utils import ...",
        "sqlalchemy.util._foo",
        "setattr(sqlalchemy.util, '_bar')",
        "fastapi.routing._IncludedRouter",
        "route._embed_body_fields, a library object's",
        "getattr(statement, '_returning'), a library object's",
        "Pool._queue_class, a library base's",
        "self._do_get, a library base's",
    ]
