"""pytest plugin (registered as the ``engine_bridge`` pytest11 entry point).

Fixtures for users' own tests of their processes:

- ``fake_clock``: a ``FakeClock``;
- ``fake_center``: an in-process ``FakeCenter`` on that clock;
- ``fake_center_server``: the same fake served on a loopback port (``.url``);
- ``bridge_factory``: ``bridge_factory(workflows)`` opens a ``Bridge`` on a temporary SQLite file,
  talking to ``fake_center`` in-process, with the fake clock;
- ``golden``: ``golden.check(name, transcript)`` compares a transcript with
  ``<test dir>/golden/<name>.jsonl``; run pytest with ``--update-golden`` to (re)write the files.

Imports of the heavy parts are deferred into the fixtures so merely having the package installed
costs a pytest run nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine_bridge.bridge import Bridge
    from engine_bridge.clock import FakeClock
    from engine_bridge.testing.fake_center import FakeCenter
    from engine_bridge.testing.golden import Golden


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("engine_bridge")
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite engine_bridge golden transcripts instead of comparing them",
    )


@pytest.fixture
def fake_clock() -> FakeClock:
    from engine_bridge.clock import FakeClock

    return FakeClock()


@pytest.fixture
def fake_center(fake_clock: FakeClock) -> FakeCenter:
    from engine_bridge.testing.fake_center import FakeCenter

    return FakeCenter(clock=fake_clock)


@pytest.fixture
def fake_center_server(fake_center: FakeCenter) -> Iterator[Any]:
    with fake_center.serve() as server:
        yield server


@pytest.fixture
def bridge_factory(
    tmp_path: Path, fake_center: FakeCenter, fake_clock: FakeClock
) -> Iterator[Callable[..., Bridge]]:
    from engine_bridge.bridge import Bridge

    opened: list[Bridge] = []

    def factory(workflows: Any, **kwargs: Any) -> Bridge:
        kwargs.setdefault("database", f"sqlite:///{tmp_path / 'engine_bridge.db'}")
        kwargs.setdefault("center", fake_center.transport())
        kwargs.setdefault("clock", fake_clock)
        bridge = Bridge.open(workflows, **kwargs)
        opened.append(bridge)
        return bridge

    yield factory
    for bridge in opened:
        bridge.close()


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    from engine_bridge.testing.golden import Golden

    folder = Path(str(request.node.path)).parent / "golden"
    return Golden(folder, update=bool(request.config.getoption("--update-golden")))
