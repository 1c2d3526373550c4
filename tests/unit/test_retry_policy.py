"""Backoff of failed effects: exponential, jittered, bounded."""

from __future__ import annotations

import random

import pytest

from consumers.runner import RetryPolicy
from ledger.errors import InputError


def test_delays_double_then_stop_at_the_cap():
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=10.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_spreads_delays_within_its_bounds():
    policy = RetryPolicy(base_delay=4.0, max_delay=100.0, jitter=0.25)
    rng = random.Random(7)
    delays = [policy.delay(2, rng) for _ in range(200)]
    assert all(6.0 <= d <= 10.0 for d in delays)
    assert len(set(delays)) > 100  # receivers are not hit in lockstep


def test_a_receivers_retry_after_is_honoured_up_to_the_cap():
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.0)
    assert policy.delay(1, retry_after=20) == 20
    assert policy.delay(1, retry_after=3600) == 30
    assert policy.delay(3, retry_after=1) == 4


def test_attempts_are_bounded():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert RetryPolicy(max_attempts=5, base_delay=1, max_delay=1e9, jitter=0).delay(10_000) < float("inf")


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"jitter": 1.5}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(InputError):
        RetryPolicy(**kwargs)
