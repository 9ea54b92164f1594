"""pytest plugin (registered as the ``engine_bridge`` pytest11 entry point).

Fixtures for users' own tests of their processes:

- ``fake_clock``: a ``FakeClock``;
- ``fake_center``: an in-process ``FakeCenter`` on that clock;
- ``fake_center_server``: the same fake served on a loopback port (``.url``);
- ``bridge_factory``: ``bridge_factory(workflows)`` opens a ``Bridge`` on a temporary SQLite file,
  talking to ``fake_center`` in-process, with the fake clock;
- ``scenario_runner``: ``scenario_runner("scenarios/x.json")`` runs a scenario file against a
  bridge on a temporary database and ``fake_center`` and returns its transcript (a list of
  ``{"endpoint", "request", "response"}``; ``.recording`` has the per-step detail). The BPMN
  files come from the ``workflows=`` argument, else the ``engine_bridge_workflows`` ini option
  (default ``workflows``); relative paths are taken from the rootdir;
- ``golden``: ``golden.check(name, transcript)`` compares a transcript with
  ``<folder>/<name>.jsonl``, where the folder is the test module's ``GOLDEN_DIR`` if it sets
  one, else ``golden/`` next to the test file. Run pytest with ``--update-golden`` to
  (re)write the files; the terminal summary lists the files that changed.

Imports of the heavy parts are deferred into the fixtures so merely having the package installed
costs a pytest run nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine_bridge.bridge import Bridge
    from engine_bridge.clock import FakeClock
    from engine_bridge.testing.fake_center import FakeCenter
    from engine_bridge.testing.golden import Golden
    from engine_bridge.testing.replay import Sandbox, Transcript
    from engine_bridge.testing.scenario import Scenario

_REWRITTEN = pytest.StashKey[list[Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("engine_bridge")
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite engine_bridge golden transcripts instead of comparing them",
    )
    parser.addini(
        "engine_bridge_workflows",
        "folder of BPMN files the scenario_runner fixture uses by default (relative to rootdir)",
        default="workflows",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REWRITTEN] = []


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rewritten = config.stash.get(_REWRITTEN, [])
    if rewritten:
        terminalreporter.write_sep("-", f"engine_bridge: rewrote {len(rewritten)} golden file(s)")
        for path in rewritten:
            terminalreporter.write_line(str(path))


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


class ScenarioRunner:
    """Runs scenarios for one test, each on its own temporary database, all against the
    test's ``fake_center`` and ``fake_clock`` (so the test can look at them afterwards)."""

    def __init__(
        self, *, root: Path, folder: Path, workflows: Path, center: FakeCenter, clock: FakeClock
    ) -> None:
        self._root = root
        self._folder = folder
        self._workflows = workflows
        self._center = center
        self._clock = clock
        self._sandboxes: list[Sandbox] = []

    def __call__(
        self,
        scenario: Scenario | Mapping[str, Any] | str | Path,
        workflows: str | Path | list[str | Path] | None = None,
    ) -> Transcript:
        """Run ``scenario`` (a file, a dict or a ``Scenario``) and return its transcript. A
        failing ``expect`` or an impossible step raises ``ScenarioError`` naming the step.
        Relative paths are taken from the rootdir, so tests run the same from any folder."""
        from engine_bridge.testing.replay import Sandbox, Transcript

        if isinstance(scenario, str | Path):
            scenario = self._root / scenario
        if workflows is None:
            workflows = self._workflows
        elif isinstance(workflows, str | Path):
            workflows = self._root / workflows
        else:
            workflows = [self._root / p for p in workflows]
        database = f"sqlite:///{self._folder / f'scenario-{len(self._sandboxes) + 1}.db'}"
        sandbox = Sandbox(
            workflows,
            clock=self._clock,
            center=self._center,
            database=database,
        )
        self._sandboxes.append(sandbox)
        return Transcript(sandbox.run(scenario))

    def close(self) -> None:
        for sandbox in self._sandboxes:
            sandbox.close()


@pytest.fixture
def scenario_runner(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fake_center: FakeCenter,
    fake_clock: FakeClock,
) -> Iterator[ScenarioRunner]:
    configured = str(request.config.getini("engine_bridge_workflows"))
    runner = ScenarioRunner(
        root=Path(request.config.rootpath),
        folder=tmp_path,
        workflows=Path(request.config.rootpath) / configured,
        center=fake_center,
        clock=fake_clock,
    )
    yield runner
    runner.close()


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Iterator[Golden]:
    from engine_bridge.testing.golden import Golden

    folder = getattr(request.module, "GOLDEN_DIR", None)
    if folder is None:
        folder = Path(str(request.node.path)).parent / "golden"
    elif not Path(folder).is_absolute():
        # From the rootdir, as scenario and workflow paths are: not from wherever pytest runs.
        folder = Path(request.config.rootpath) / folder
    checker = Golden(folder, update=bool(request.config.getoption("--update-golden")))
    yield checker
    request.config.stash.setdefault(_REWRITTEN, []).extend(checker.rewritten)
