"""Prometheus metrics of one service instance (its own registry, so two apps in
one process — tests — never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ledger.service.writer import RoundObserver

_LATENCY = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics(RoundObserver):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "ledger_events_accepted", "Events accepted (duplicates of an accepted event not counted)", ["event_type"], registry=r
        )
        self.duplicates = Counter("ledger_events_duplicate", "Retries answered with the event already recorded", ["event_type"], registry=r)
        self.rejected = Counter(
            "ledger_events_rejected", "Events refused, by the rule (or reason) that refused them", ["event_type", "rule"], registry=r
        )
        self.append_seconds = Histogram(
            "ledger_append_seconds", "Time to answer an append request, by outcome", ["outcome"], buckets=_LATENCY, registry=r
        )
        self.read_seconds = Histogram("ledger_read_seconds", "Time to answer a read of the views", ["view"], buckets=_LATENCY, registry=r)
        self.round_requests = Histogram(
            "ledger_round_requests", "Requests folded into one atomic append (group commit)", buckets=_SIZES, registry=r
        )
        self.round_events = Histogram("ledger_round_events", "New events written by one atomic append", buckets=_SIZES, registry=r)
        self.round_seconds = Histogram("ledger_round_seconds", "Time to decide and commit one round", buckets=_LATENCY, registry=r)
        self.ready = Gauge("ledger_ready", "1 when the service accepts appends", registry=r)

    def round_committed(self, partition: int, requests: int, events: int, seconds: float) -> None:
        self.round_requests.observe(requests)
        self.round_events.observe(events)
        self.round_seconds.observe(seconds)
