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

from ledger.groups import HEARTBEAT_MS, SESSION_TIMEOUT_MS, GroupMembership

log = logging.getLogger(__name__)

__all__ = ["HEARTBEAT_MS", "SESSION_TIMEOUT_MS", "Membership", "decode_url", "encode_url"]

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


class Membership(GroupMembership):
    """The membership itself is :class:`ledger.groups.GroupMembership` (shared with
    ``ledger project --group`` and ``ledger consume --group``); this adds the URL
    each instance advertises and the lookup of a partition's owner."""

    def __init__(
        self,
        log_,
        advertise_url: str,
        on_assigned: Callable[[list[int]], None],
        on_revoked: Callable[[list[int]], None],
    ):
        super().__init__(log_, f"ledger-service.{log_.topic}", encode_url(advertise_url), on_assigned, on_revoked)
        self.url = advertise_url
        self._owners: tuple[float, dict[int, str]] = (0.0, {})
        self._owners_lock = threading.Lock()

    def _who(self) -> str:
        return self.url

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
