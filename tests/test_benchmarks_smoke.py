"""The benchmarks stay runnable: timings are never asserted here (they are a matter of
``make bench``), but the storage figure is a count of bytes, so its target is checked."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main
from benchmarks.storage import run as storage


def test_the_storage_benchmark_meets_its_target_in_bytes() -> None:
    (check,) = [c for c in storage(quick=True) if c.unit == "%"]
    assert check.passed, check.line()
    assert 0 < check.measured <= 25


def test_an_unknown_benchmark_is_refused_with_the_names_to_choose_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["overheads"])
    assert stopped.value.code == 2
    assert "choose from overhead, countersign, delivery, storage, memory" in capsys.readouterr().err
