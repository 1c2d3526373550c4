"""Independent verification of the raw log: hash chains, sequences, schemas, rules.

It re-reads every record from the log itself (no projection database), decodes
each with the writer schema its fingerprint names, and walks every model stream:

* the envelope's ``sequence`` must be the previous one plus one — a gap names the
  missing events, a repeat or step back an inserted or reordered one;
* ``prev_hash`` must be the SHA-256 of the previous record's exact bytes — a
  mismatch names the previous event as altered (or this one as inserted);
* the hash the backend stored beside the bytes, where it keeps one, must match the
  bytes (this is what catches an altered *last* event, which has no successor);
* replaying the lifecycle rules must accept every event.

The first problem of each stream is reported; later ones in that stream follow
from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from ledger import codec
from ledger.chain import Problem, StreamReport, StreamWalker
from ledger.log import StoredRecord

__all__ = ["Problem", "Report", "StreamReport", "verify"]


@dataclass
class Report:
    streams: dict[str, StreamReport] = field(default_factory=dict)
    unreadable: list[Problem] = field(default_factory=list)
    """Records that belong to no readable stream (undecodable, no key)."""
    heads_checked: int | None = None
    """How many heads recorded earlier were checked (None: none were asked for)."""

    @property
    def problems(self) -> list[Problem]:
        found = [s.problem for s in self.streams.values() if s.problem]
        return found + self.unreadable

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events(self) -> int:
        return sum(s.events for s in self.streams.values())

    @property
    def unreadable_records(self) -> int:
        keyless = sum(1 for p in self.unreadable if p.model is None)
        return keyless + sum(s.unreadable for s in self.streams.values())

    def summary(self, where: str = "") -> str:
        unreadable = self.unreadable_records
        extra = f", {unreadable} unreadable record(s)" if unreadable else ""
        if self.heads_checked is not None:
            extra += f", {self.heads_checked} recorded head(s) checked"
        status = "intact" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{len(self.streams)} stream(s), {self.events} event(s){extra}{where}: {status}"

    def as_dict(self) -> dict:
        extra = {} if self.heads_checked is None else {"heads_checked": self.heads_checked}
        return {
            "ok": self.ok,
            "streams": len(self.streams),
            "events": self.events,
            "unreadable_records": self.unreadable_records,
            "heads": {
                m: {"sequence": s.head_sequence, "hash": s.head_hash} for m, s in sorted(self.streams.items())
            },
            "problems": [asdict(p) for p in self.problems],
            **extra,
        }


def verify(
    records: Iterable[StoredRecord],
    model: str | None = None,
    anchors: dict[str, tuple[int, str]] | None = None,
    home: Callable[[str], int] | None = None,
    heads: dict[str, tuple[int, str]] | None = None,
    *,
    grouped: bool = False,
) -> Report:
    """Group ``records`` (in log order) by stream and report the first problem of each.

    ``grouped``: the records come stream after stream (each stream in log order, the
    streams in the order of their first record), as :meth:`SqliteLog.read_streams`
    gives them; each stream is walked as soon as the next one starts, so a log of a
    million events is verified holding one stream at a time.

    ``anchors`` gives, per model, the ``(sequence, hash)`` the first record links to
    when the records start mid-stream (an export with --since). ``home`` gives the
    partition a model's stream lives in (Kafka): a record keyed by the model in
    another partition was produced there by hand and is no part of the stream.
    ``heads`` gives, per model, a ``(sequence, hash)`` recorded earlier (an evidence
    file's chain heads, a published ``verify --json``): the stream must still hold
    that very event — which is what catches events deleted from a stream's end."""
    report = Report()
    streams: dict[str, list[StoredRecord]] = {}
    walkers = {}
    # Only the hashes a recorded head names are kept once a stream is walked.
    wanted: dict[str, set[int]] = {}
    for name, (sequence, _) in (heads or {}).items():
        wanted.setdefault(name, set()).add(sequence)

    def walk(name: str, stream: list[StoredRecord]) -> None:
        walker = walkers[name] = StreamWalker(name, codec.decode, (anchors or {}).get(name))
        report.streams[name] = walker.walk(stream)
        report.unreadable.extend(walker.unreadable)
        keep = wanted.get(name, set())
        walker.hashes = {s: h for s, h in walker.hashes.items() if s in keep}
        walker.seen, walker.previous = {}, None

    current: str | None = None
    for record in records:
        if model is not None and record.model != model:
            continue
        if not record.model:
            report.unreadable.append(
                Problem(None, "undecodable", str(record.position), None, None, "record has no model key")
            )
            continue
        if home is not None and record.position.partition != home(record.model):
            report.unreadable.append(
                Problem(
                    record.model,
                    "misplaced",
                    str(record.position),
                    record.sequence,
                    None,
                    f"keyed by {record.model!r}, whose stream lives in partition {home(record.model)}",
                )
            )
            continue
        if grouped and record.model != current:
            # Stream after stream: the previous one is complete, walk it and let its
            # records go (memory per stream, not per log).
            if current is not None:
                walk(current, streams.pop(current))
            current = record.model
        streams.setdefault(record.model, []).append(record)
    for name, stream in list(streams.items()):
        walk(name, stream)
    streams.clear()
    if heads is not None:
        report.heads_checked = sum(1 for name in heads if model is None or name == model)
    for name, (sequence, expected) in sorted((heads or {}).items()):
        if model is not None and name != model:
            continue
        walker = walkers.get(name)
        found = walker.hashes.get(sequence) if walker else None
        if walker is not None and walker.report.problem is not None and found is None:
            continue  # the stream's first problem already explains it
        if found is None:
            have = walker.report.head_sequence if walker else 0
            report.unreadable.append(
                Problem(
                    name,
                    "missing",
                    "-",
                    sequence,
                    None,
                    f"a head #{sequence} was recorded earlier, but the stream now ends at #{have}: "
                    "events were removed from its end",
                )
            )
        elif found != expected:
            report.unreadable.append(
                Problem(
                    name,
                    "altered",
                    "-",
                    sequence,
                    None,
                    f"event #{sequence} now hashes to {found[:16]}…, the head recorded earlier was {expected[:16]}…",
                )
            )
    return report
