"""When to try a failed centre call again, and when to stop: a pure schedule.

Exponential backoff with FULL jitter. Before attempt ``n + 1`` (after ``n`` failed attempts)
the relay waits

    delay(n) = uniform(0, min(cap_seconds, base_seconds * 2 ** (n - 1)))

so with the defaults the ceiling runs 0.5, 1, 2, 4, … seconds and stays at 60 s from the 8th
failure on. Full jitter spreads the retries of many rows (and many relays) that failed
together, instead of sending them back to a recovering centre in one burst.

A row is given up (made a dead letter) once ``max_attempts`` attempts have failed, or once its
first attempt is ``max_age`` old: after a day the call is more likely to confuse the people
reading their todo lists than to help them, and an operator should look at it.

The random source is injectable, so tests pin the schedule with ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Backoff parameters (units in the names) and the jitter's random source."""

    base_seconds: float = 0.5
    cap_seconds: float = 60.0
    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=24)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("RetryPolicy needs 0 < base_seconds <= cap_seconds")
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay after failed attempt number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        # Cap the exponent first: 2 ** 1000 would overflow a float.
        exponent = min(attempt - 1, 64)
        return min(self.cap_seconds, self.base_seconds * 2.0**exponent)

    def delay(self, attempt: int) -> float:
        """A jittered delay in seconds after failed attempt number ``attempt``."""
        # Jitter spreads load; it is not a secret, so a non-cryptographic generator is right.
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def exhausted(self, *, attempts: int, first_attempt_at: datetime | None, now: datetime) -> bool:
        """True when no further attempt may be made: the budget or the age is used up."""
        if attempts >= self.max_attempts:
            return True
        return first_attempt_at is not None and now - first_attempt_at >= self.max_age

    def next_attempt_at(self, attempt: int, now: datetime) -> datetime:
        """When to try again after failed attempt number ``attempt`` at ``now``."""
        return now + timedelta(seconds=self.delay(attempt))
