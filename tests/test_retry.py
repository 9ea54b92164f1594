"""The backoff schedule: exponential ceilings, full jitter, attempt and age limits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from engine_bridge.retry import RetryPolicy

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_ceilings_double_from_base_up_to_the_cap() -> None:
    """0.5, 1, 2, … seconds, never above 60 s, even for huge attempt numbers."""
    policy = RetryPolicy()
    assert [policy.ceiling(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.ceiling(10_000) == 60.0


def test_delays_are_full_jitter_drawn_from_the_injected_random() -> None:
    """delay(n) is uniform(0, ceiling(n)) from the given generator, so a seed pins it."""
    policy = RetryPolicy(rng=random.Random(42))
    reference = random.Random(42)
    for attempt in range(1, 13):
        assert policy.delay(attempt) == reference.uniform(0, min(60.0, 0.5 * 2 ** (attempt - 1)))


def test_delays_stay_within_zero_and_the_ceiling() -> None:
    """Over many draws every delay lies in [0, ceiling] and they are actually spread out."""
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=10.0, rng=random.Random(1))
    draws = [policy.delay(4) for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 1.0 and max(draws) > 7.0


def test_next_attempt_at_adds_the_delay_to_now() -> None:
    """The due time is now plus the same jittered delay."""
    policy = RetryPolicy(rng=random.Random(3))
    expected = random.Random(3).uniform(0, 2.0)
    assert policy.next_attempt_at(3, T0) == T0 + timedelta(seconds=expected)


def test_exhausted_by_attempts_or_by_age() -> None:
    """12 attempts, or 24 hours since the first attempt, end the retries."""
    policy = RetryPolicy()
    assert not policy.exhausted(attempts=11, first_attempt_at=T0, now=T0)
    assert policy.exhausted(attempts=12, first_attempt_at=T0, now=T0)
    just_young = T0 + timedelta(hours=24) - timedelta(seconds=1)
    assert not policy.exhausted(attempts=1, first_attempt_at=T0, now=just_young)
    assert policy.exhausted(attempts=1, first_attempt_at=T0, now=T0 + timedelta(hours=24))
    assert not policy.exhausted(attempts=1, first_attempt_at=None, now=T0)


@pytest.mark.parametrize(
    "kwargs",
    [{"base_seconds": 0}, {"base_seconds": 5, "cap_seconds": 1}, {"max_attempts": 0}],
)
def test_nonsense_parameters_are_refused(kwargs: dict[str, float]) -> None:
    """A policy that could never retry sensibly fails at construction."""
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        RetryPolicy().ceiling(0)
