"""`core.hooks.call_hook`: the one way the core calls a hook whose implementations may be
async. Plugin order, each result awaited before the next implementation runs, pluggy's
`firstresult` honoured, hook wrappers skipped, a wrong result naming its plugin.

The hooks here are declared by a spec class of the test's own and implemented by plain
objects registered the way the kernel registers plugins (in reverse, so that calls follow
plugin order).
"""

from __future__ import annotations

from typing import Any

import pluggy
import pytest

from core.hooks import call_hook, emit, new_plugin_manager
from core.hookspecs import hookimpl, hookspec


class Specs:
    @hookspec(firstresult=True)
    def pick(self, value: int) -> Any:
        """The first plugin with an answer wins."""

    @hookspec
    def listen(self, value: int) -> Any:
        """Every plugin hears it."""

    @hookspec
    def refine(self, value: int) -> Any:
        """Each plugin gets the previous one's value."""


class Plugin:
    def __init__(self, name: str, answer: Any = None, *, fail: bool = False) -> None:
        self.name = name
        self.answer = answer
        self.fail = fail
        self.calls: list[tuple[str, int]] = []

    def _reply(self, hook: str, value: int) -> Any:
        self.calls.append((hook, value))
        if self.fail:
            raise RuntimeError(f"{self.name} broke")
        return self.answer

    @hookimpl
    def pick(self, value: int) -> Any:
        return self._reply("pick", value)

    @hookimpl
    def listen(self, value: int) -> Any:
        return self._reply("listen", value)

    @hookimpl
    def refine(self, value: int) -> Any:
        self.calls.append(("refine", value))
        return None if self.answer is None else value + self.answer


class AsyncPlugin(Plugin):
    @hookimpl
    async def pick(self, value: int) -> Any:  # type: ignore[override]
        return self._reply("pick", value)

    @hookimpl
    async def listen(self, value: int) -> Any:  # type: ignore[override]
        return self._reply("listen", value)

    @hookimpl
    async def refine(self, value: int) -> Any:  # type: ignore[override]
        self.calls.append(("refine", value))
        return None if self.answer is None else value + self.answer


class Wrapper:
    name = "wrapper"

    @hookimpl(wrapper=True)
    def pick(self, value: int) -> Any:
        return (yield)


def manager(*plugins: Any) -> pluggy.PluginManager:
    """A plugin manager with the test's hooks, `plugins` registered in plugin order."""
    pm = new_plugin_manager()
    pm.add_hookspecs(Specs)
    for plugin in reversed(plugins):
        pm.register(plugin, name=plugin.name)
    return pm


async def test_a_firstresult_hook_stops_at_the_first_answer_awaiting_async_ones() -> None:
    silent, sync, later = AsyncPlugin("silent"), Plugin("sync", 7), Plugin("later", 8)
    pm = manager(silent, sync, later)

    assert await call_hook(pm.hook.pick, value=1) == 7
    assert silent.calls == sync.calls == [("pick", 1)]
    assert later.calls == []  # never called once an earlier plugin answered
    assert await call_hook(pm.hook.pick, named=True, value=2) == ("sync", 7)


async def test_a_firstresult_hook_without_an_answer_gives_none() -> None:
    pm = manager(Plugin("one"), AsyncPlugin("two"))
    assert await call_hook(pm.hook.pick, value=1) is None
    assert await call_hook(manager().hook.pick, value=1) is None


async def test_any_other_hook_calls_everyone_and_lists_the_answers_in_plugin_order() -> None:
    first, second, third = AsyncPlugin("first", "a"), Plugin("second"), Plugin("third", "c")
    pm = manager(first, second, third)

    assert await call_hook(pm.hook.listen, value=3) == ["a", "c"]
    assert [p.calls for p in (first, second, third)] == [[("listen", 3)]] * 3
    assert await call_hook(pm.hook.listen, named=True, value=3) == [("first", "a"), ("third", "c")]


async def test_tryfirst_and_trylast_are_respected() -> None:
    class Early(Plugin):
        @hookimpl(tryfirst=True)
        def pick(self, value: int) -> Any:
            return self._reply("pick", value)

    pm = manager(Plugin("ordinary", "ordinary"), Early("early", "early"))
    assert await call_hook(pm.hook.pick, value=1) == "early"


async def test_a_chain_passes_each_result_on_and_stops_at_none() -> None:
    add_one, add_ten, veto, after = (
        AsyncPlugin("add_one", 1),
        Plugin("add_ten", 10),
        Plugin("veto"),
        Plugin("after", 100),
    )
    assert await call_hook(manager(add_one, add_ten).hook.refine, chain="value", value=0) == 11
    assert add_ten.calls == [("refine", 1)]

    pm = manager(veto, after)
    assert await call_hook(pm.hook.refine, chain="value", value=5) is None
    assert after.calls == []


async def test_a_result_of_the_wrong_type_is_a_type_error_naming_the_plugin() -> None:
    pm = manager(Plugin("none"), AsyncPlugin("liar", "not a number"))
    with pytest.raises(TypeError) as caught:
        await call_hook(pm.hook.pick, returns=int, value=1)
    assert str(caught.value) == "plugin 'liar': pick must return int or None, not str"


async def test_hook_wrappers_are_skipped() -> None:
    """A wrapper called as a plain function would give a (truthy) generator."""
    pm = manager(Wrapper(), Plugin("answer", 42))
    assert await call_hook(pm.hook.pick, value=1) == 42


async def test_only_calls_the_plugins_named() -> None:
    one, two = Plugin("one", 1), AsyncPlugin("two", 2)
    assert await call_hook(manager(one, two).hook.listen, only={"two"}, value=1) == [2]
    assert one.calls == []


async def test_accept_says_what_counts_as_an_answer() -> None:
    pm = manager(Plugin("declines", False), AsyncPlugin("accepts", True))
    assert await call_hook(pm.hook.pick, accept=bool, named=True, value=1) == ("accepts", True)


async def test_an_exception_propagates_unless_on_error_takes_it() -> None:
    broken, fine = Plugin("broken", fail=True), AsyncPlugin("fine", "ok")
    pm = manager(broken, fine)
    with pytest.raises(RuntimeError, match="broken broke"):
        await call_hook(pm.hook.listen, value=1)
    assert fine.calls == []

    failures: list[tuple[str, str]] = []
    answers = await call_hook(
        pm.hook.listen, on_error=lambda p, e: failures.append((p, str(e))), value=2
    )
    assert answers == ["ok"]
    assert failures == [("broken", "broken broke")]


async def test_emit_logs_a_failing_listener_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    broken, fine = AsyncPlugin("broken", fail=True), Plugin("fine")
    await emit(manager(broken, fine).hook.listen, value=4)
    assert fine.calls == [("listen", 4)]
    [record] = [r for r in caplog.records if r.name == "courtyard.events"]
    assert record.getMessage() == "plugin 'broken' failed handling event 'listen'"
    assert record.exc_info is not None
