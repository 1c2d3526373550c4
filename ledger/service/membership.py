"""Which instance writes which partition: Kafka's own group membership.

With ``ledger serve --advertise URL`` on a Kafka log, every instance joins the
consumer group ``ledger-service.<topic>`` and subscribes to the lifecycle topic.
The group coordinator assigns each partition to exactly one live member; the
member starts that partition's writer (whose ``init_transactions`` fences any
previous writer of it: a paused or partitioned-away instance cannot commit any
more) and stops the writers of partitions taken from it. A SIGKILLed instance
stops heart-beating and its partitions move to the others after the session
timeout (:data:`SESSION_TIMEOUT_MS`).

The consumer reads nothing: its partitions are paused as soon as they are
assigned; it only keeps the membership alive. Each member's ``client_id`` carries
its URL (hex-encoded, since a client id is a restricted name), so any instance can
tell, by describing the group, where to forward a request for a partition it does
not own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 6_000
"""The broker's lowest allowed session timeout by default
(``group.min.session.timeout.ms``): how long a dead instance keeps its partitions."""
HEARTBEAT_MS = 1_000
CLIENT_PREFIX = "ledger-service-"


def encode_url(url: str) -> str:
    return CLIENT_PREFIX + url.encode("utf-8").hex()


def decode_url(client_id: str) -> str | None:
    if not client_id.startswith(CLIENT_PREFIX):
        return None
    try:
        return bytes.fromhex(client_id[len(CLIENT_PREFIX):]).decode("utf-8")
    except ValueError:
        return None


class Membership:
    def __init__(
        self,
        log_,
        advertise_url: str,
        on_assigned: Callable[[list[int]], None],
        on_revoked: Callable[[list[int]], None],
    ):
        self.log = log_
        self.url = advertise_url
        self.group = f"ledger-service.{log_.topic}"
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.joined = threading.Event()
        self.owned: set[int] = set()
        self._stop = threading.Event()
        self._owners: tuple[float, dict[int, str]] = (0.0, {})
        self._owners_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ledger-membership", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _consumer(self):
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        config = self.log.client_config()
        config["client_id"] = encode_url(self.url)
        consumer = KafkaConsumer(
            **config,
            group_id=self.group,
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            isolation_level="read_committed",
        )
        membership = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                mine = sorted(tp.partition for tp in revoked if tp.partition in membership.owned)
                if mine:
                    log.info("partitions %s move away from %s", mine, membership.url)
                    membership.owned -= set(mine)
                    membership.on_revoked(mine)

            def on_partitions_assigned(self, assigned):
                consumer.pause(*assigned)
                fresh = sorted(tp.partition for tp in assigned if tp.partition not in membership.owned)
                membership.owned |= set(fresh)
                if fresh:
                    log.info("%s now writes partitions %s", membership.url, fresh)
                    membership.on_assigned(fresh)
                membership.joined.set()

        # Know the topic's partitions before joining: a group leader that does not
        # yet have them assigns nothing for the topic (seen once in ten runs: one
        # instance sat without partitions while the other had all three).
        deadline = time.monotonic() + 10
        while not consumer.partitions_for_topic(self.log.topic) and time.monotonic() < deadline:
            time.sleep(0.1)
        consumer.subscribe([self.log.topic], listener=Listener())
        return consumer

    def _run(self) -> None:
        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                consumer.poll(timeout_ms=200, max_records=1)
            except Exception as exc:  # noqa: BLE001 - the broker may be away; rejoin
                log.warning("group membership failed, rejoining: %s", exc)
                if consumer is not None:
                    self._close(consumer)
                    consumer = None
                if self.owned:
                    lost = sorted(self.owned)
                    self.owned.clear()
                    self.on_revoked(lost)
                self._stop.wait(1.0)
        if consumer is not None:
            self._close(consumer)
        if self.owned:
            lost = sorted(self.owned)
            self.owned.clear()
            self.on_revoked(lost)

    @staticmethod
    def _close(consumer) -> None:
        try:
            # Leaving the group hands the partitions over at once, not after the
            # session timeout.
            consumer.close(autocommit=False, timeout_ms=3000)
        except Exception:  # noqa: BLE001 - best effort
            log.debug("closing the membership consumer failed", exc_info=True)

    def owner_of(self, partition: int) -> str | None:
        """The URL of the instance that writes ``partition`` now (cached 0.5 s)."""
        with self._owners_lock:
            when, owners = self._owners
            if time.monotonic() - when > 0.5:
                owners = self._describe()
                self._owners = (time.monotonic(), owners)
            return owners.get(partition)

    def forget_owners(self) -> None:
        with self._owners_lock:
            self._owners = (0.0, {})

    def _describe(self) -> dict[int, str]:
        owners: dict[int, str] = {}
        try:
            groups = self.log.describe_groups([self.group])
        except Exception as exc:  # noqa: BLE001 - no owner known: the caller answers 503
            log.warning("cannot describe group %s: %s", self.group, exc)
            return owners
        for member in (groups.get(self.group) or {}).get("members", []):
            url = decode_url(member.get("client_id") or "")
            assignment = member.get("member_assignment") or {}
            if url is None or not isinstance(assignment, dict):
                continue
            for entry in assignment.get("assigned_partitions", []):
                if entry.get("topic") == self.log.topic:
                    for partition in entry.get("partitions", []):
                        owners[partition] = url
        return owners
