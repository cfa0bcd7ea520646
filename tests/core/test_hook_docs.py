"""Every hook is documented, in one format, with an example that runs.

A hook declared in `core.hookspecs` (or in the `user` plugin's published hookspecs) needs a
section of docs/plugins.md whose heading is its signature (`### startup(app)`,
`#### user_deleted(user_id)`); one the `mail` plugin declares, a section of
docs/plugins/mail.md (`### deliver_mail(message)`). Each has **Parameters**, **Returns**,
**Called** and a Python example implementing it. Adding a hook without documenting it
fails here.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
import pytest

from core import hookspecs as core_hookspecs
from core.hookspecs import hookspec
from plugins.mail import hookspecs as mail_hookspecs
from plugins.user import hookspecs as user_hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = DOCS / "plugins.md"
MAIL_DOC = DOCS / "plugins" / "mail.md"
SPEC_MARKER = f"{core_hookspecs.PROJECT}_spec"
IMPL_MARKER = f"{core_hookspecs.PROJECT}_impl"
CORE_LEVEL = 3  # `### hook(...)` under "## Hook reference"
USER_LEVEL = 4  # `#### event(...)` under "### user plugin"
MAIL_LEVEL = 3  # `### deliver_mail(...)` under "## The deliver_mail hook" of mail.md
# Where each group of hooks is documented: (declaring module, document, heading level).
SPEC_MODULES: dict[str, tuple[types.ModuleType, Path, int]] = {
    "core": (core_hookspecs, DOC, CORE_LEVEL),
    "user": (user_hookspecs, DOC, USER_LEVEL),
    "mail": (mail_hookspecs, MAIL_DOC, MAIL_LEVEL),
}

_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*")
_SIGNATURE = re.compile(r"(\w+)\(([^()]*)\)")
_FENCE = re.compile(r"\s*```")
_PYTHON_BLOCK = re.compile(r"^\s*```python\n(.*?)^\s*```", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Section:
    level: int
    name: str
    params: tuple[str, ...]
    body: str

    @property
    def heading(self) -> str:
        return f"{'#' * self.level} {self.name}({', '.join(self.params)})"

    def python_blocks(self) -> list[str]:
        return _PYTHON_BLOCK.findall(self.body)


def spec_names(module: Any) -> list[str]:
    """The hooks `module` declares: what carries pluggy's spec marker (as core.hooks does)."""
    return [name for name, obj in inspect.getmembers(module) if hasattr(obj, SPEC_MARKER)]


def spec_params(module: Any, name: str) -> tuple[str, ...]:
    return tuple(inspect.signature(getattr(module, name)).parameters)


def signature_sections(markdown: str) -> list[Section]:
    """Every section whose heading is a signature, `name(a, b)`, up to the next heading.

    Lines inside fenced code blocks are never headings (Python comments start with `#`).
    """
    sections: list[Section] = []
    current: tuple[int, str, tuple[str, ...]] | None = None
    body: list[str] = []
    in_code = False

    def close() -> None:
        if current is not None:
            sections.append(Section(*current, body="\n".join(body) + "\n"))

    for line in markdown.splitlines():
        heading = None if in_code else _HEADING.fullmatch(line)
        if _FENCE.match(line):
            in_code = not in_code
        if heading is None:
            body.append(line)
            continue
        close()
        body = []
        signature = _SIGNATURE.fullmatch(heading.group(2))
        current = None
        if signature is not None:
            params = tuple(p.strip() for p in signature.group(2).split(",") if p.strip())
            current = (len(heading.group(1)), signature.group(1), params)
    close()
    return sections


def documentation_problems(module: Any, markdown: str, level: int) -> list[str]:
    """What is missing or wrong in the documentation of the hooks `module` declares."""
    declared = spec_names(module)
    at_level = [s for s in signature_sections(markdown) if s.level == level]
    problems: list[str] = []
    for section in at_level:
        if section.name not in declared:
            problems.append(f"{section.heading!r} documents a hook that is not declared")
    for name in declared:
        params = spec_params(module, name)
        expected = Section(level, name, params, "").heading
        found = [s for s in signature_sections(markdown) if s.name == name]
        if not found:
            problems.append(f"{name}: not documented (add a section headed {expected!r})")
            continue
        if len(found) > 1:
            problems.append(f"{name}: documented {len(found)} times")
        section = found[0]
        if section.heading != expected:
            problems.append(f"{name}: heading {section.heading!r} should be {expected!r}")
        problems += [f"{name}: {p}" for p in _section_problems(section, params)]
    return problems


def _section_problems(section: Section, params: tuple[str, ...]) -> list[str]:
    problems = [
        f"no {label} paragraph"
        for label in ("**Parameters**", "**Returns**", "**Called**")
        if label not in section.body
    ]
    if not params and "**Parameters**: none" not in section.body:
        problems.append("a hook without parameters needs '**Parameters**: none'")
    problems += [
        f"parameter {p!r} is not described" for p in params if f"`{p}`" not in section.body
    ]
    if not any(
        "@hookimpl" in block and f"def {section.name}(" in block
        for block in section.python_blocks()
    ):
        problems.append(f"no python example with '@hookimpl' and 'def {section.name}('")
    return problems


def run_example(source: str, hook: str) -> list[Any]:
    """Execute an example in a fresh namespace; the hook implementations it defines.

    Each is the hookimpl-marked function itself, or an instance (made without calling
    `__init__`, which wants a container) of a class whose method implements `hook`.
    """
    module_name = f"docs_example_{hook}"
    namespace: dict[str, Any] = {"__name__": module_name}
    code = compile(source, f"<docs/plugins.md example for {hook}>", "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102 - the documentation's own example
    found: list[Any] = []
    for obj in namespace.values():
        if getattr(obj, "__module__", None) != module_name:
            continue  # imported, not defined by the example
        if inspect.isfunction(obj) and obj.__name__ == hook and hasattr(obj, IMPL_MARKER):
            found.append(obj)
        elif inspect.isclass(obj) and hasattr(getattr(obj, hook, None), IMPL_MARKER):
            found.append(object.__new__(obj))
    return found


def _plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(core_hookspecs.PROJECT)
    for module, _, _ in SPEC_MODULES.values():
        pm.add_hookspecs(module)
    return pm


def _register(pm: pluggy.PluginManager, implementation: Any, hook: str) -> None:
    """Register as a plugin would be: a module of functions, or an instance of a class."""
    if inspect.isfunction(implementation):
        module = types.ModuleType(f"docs_example_{hook}")
        vars(module)[hook] = implementation
        implementation = module
    pm.register(implementation)


def _documented_hooks() -> list[Any]:
    return [
        pytest.param(group, name, id=f"{group}.{name}")
        for group, (module, _, _) in SPEC_MODULES.items()
        for name in spec_names(module)
    ]


@pytest.fixture(scope="module")
def markdown() -> str:
    return DOC.read_text(encoding="utf-8")


def document_of(group: str) -> str:
    return SPEC_MODULES[group][1].read_text(encoding="utf-8")


# The documentation covers every hook


def test_the_spec_modules_declare_the_known_hooks() -> None:
    """A guard for the checks below: they see every hook (so cannot pass vacuously)."""
    assert set(spec_names(core_hookspecs)) >= {
        "register_commands",
        "register_readiness_checks",
        "startup",
        "shutdown",
        "authenticate",
        "check_principal",
    }
    assert set(spec_names(user_hookspecs)) == {
        "user_created",
        "user_updated",
        "user_deleted",
        "user_restored",
    }
    assert spec_names(mail_hookspecs) == ["deliver_mail"]


def test_the_core_documents_no_hook_it_does_not_declare(markdown: str) -> None:
    """Stops docs/plugins.md keeping a section for a hook that moved to a plugin (as
    `deliver_mail` did), which would read as the core's."""
    assert [s.heading for s in signature_sections(markdown) if s.name == "deliver_mail"] == []


@pytest.mark.parametrize("group", list(SPEC_MODULES))
def test_every_hook_is_documented(group: str) -> None:
    module, _, level = SPEC_MODULES[group]
    assert documentation_problems(module, document_of(group), level) == []


@pytest.mark.parametrize(("group", "hook"), _documented_hooks())
def test_every_example_runs_and_implements_its_hook(group: str, hook: str) -> None:
    """Each example executes, defines a @hookimpl for its hook, and pluggy accepts it
    against the real spec (so its parameter names are the spec's)."""
    sections = [s for s in signature_sections(document_of(group)) if s.name == hook]
    assert sections, f"{hook} is not documented"
    examples = [b for b in sections[0].python_blocks() if "@hookimpl" in b]
    assert examples, f"{hook} has no example"
    for source in examples:
        implementations = run_example(source, hook)
        assert implementations, f"the example for {hook} defines no @hookimpl named {hook}"
        pm = _plugin_manager()
        for implementation in implementations:
            _register(pm, implementation, hook)
        assert getattr(pm.hook, hook).get_hookimpls()


def test_every_code_block_in_the_hook_reference_compiles() -> None:
    blocks = [
        (section.name, block)
        for document in {path for _, path, _ in SPEC_MODULES.values()}
        for section in signature_sections(document.read_text(encoding="utf-8"))
        for block in section.python_blocks()
    ]
    assert len(blocks) >= sum(len(spec_names(m)) for m, _, _ in SPEC_MODULES.values())
    for name, block in blocks:
        compile(block, f"<docs/plugins.md: {name}>", "exec", dont_inherit=True)


# The check notices a hook added without documentation


def _spec_module(**specs: Callable[..., Any]) -> types.ModuleType:
    module = types.ModuleType("new_hookspecs")
    vars(module).update({name: hookspec(function) for name, function in specs.items()})
    return module


def _brand_new_hook(app: Any, reason: str) -> None:
    """A hook someone just added."""


_DOCUMENTED = """\
## Hook reference

### brand_new_hook(app, reason)

**Parameters**

- `app`: the app.
- `reason`: why.

**Returns**: nothing.

**Called**: never.

**Example**

```python
from core.hookspecs import hookimpl


@hookimpl
def brand_new_hook(app, reason):
    # a comment, not a heading
    pass
```
"""


def test_an_undocumented_hook_is_reported(markdown: str) -> None:
    module = _spec_module(brand_new_hook=_brand_new_hook)
    problems = documentation_problems(module, markdown, CORE_LEVEL)
    assert any(p.startswith("brand_new_hook: not documented") for p in problems), problems


def test_a_documented_hook_passes() -> None:
    module = _spec_module(brand_new_hook=_brand_new_hook)
    assert documentation_problems(module, _DOCUMENTED, CORE_LEVEL) == []
    [section] = signature_sections(_DOCUMENTED)
    [example] = section.python_blocks()
    assert [f.__name__ for f in run_example(example, "brand_new_hook")] == ["brand_new_hook"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("### brand_new_hook(app, reason)", "### brand_new_hook(reason, app)"), "heading"),
        (("### brand_new_hook(app, reason)", "#### brand_new_hook(app, reason)"), "heading"),
        (("- `reason`: why.", "- why."), "parameter 'reason' is not described"),
        (("**Called**: never.", "Called: never."), "no **Called** paragraph"),
        (("**Returns**: nothing.", ""), "no **Returns** paragraph"),
        (("@hookimpl\n", ""), "no python example"),
        (("def brand_new_hook(", "def other_hook("), "no python example"),
    ],
)
def test_a_wrong_section_is_reported(change: tuple[str, str], expected: str) -> None:
    module = _spec_module(brand_new_hook=_brand_new_hook)
    markdown = _DOCUMENTED.replace(*change)
    problems = documentation_problems(module, markdown, CORE_LEVEL)
    assert any(expected in p for p in problems), problems


def test_a_hook_without_parameters_says_none() -> None:
    def bare() -> None:
        """No parameters."""

    module = _spec_module(bare=bare)
    markdown = _DOCUMENTED.replace("brand_new_hook(app, reason)", "bare()").replace(
        "brand_new_hook(", "bare("
    )
    problems = documentation_problems(module, markdown, CORE_LEVEL)
    assert "bare: a hook without parameters needs '**Parameters**: none'" in problems
    fixed = markdown.replace("**Parameters**\n", "**Parameters**: none.\n")
    assert documentation_problems(module, fixed, CORE_LEVEL) == []


def test_a_section_for_a_hook_that_is_gone_is_reported() -> None:
    module = _spec_module()
    problems = documentation_problems(module, _DOCUMENTED, CORE_LEVEL)
    assert problems == ["'### brand_new_hook(app, reason)' documents a hook that is not declared"]


def test_an_example_that_implements_another_hook_is_not_accepted() -> None:
    source = "from core.hookspecs import hookimpl\n\n@hookimpl\ndef startup(app):\n    pass\n"
    assert run_example(source, "shutdown") == []
    assert [f.__name__ for f in run_example(source, "startup")] == ["startup"]
