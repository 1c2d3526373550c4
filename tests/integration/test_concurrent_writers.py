"""Writers racing in separate processes (``spawn``): exactly one wins a conflicting
race, every distinct event is accepted once with a gapless sequence, and — on Kafka —
a writer fenced by another process cannot commit what it decided on stale state.

Each worker opens its own log before a barrier, so the race is on the append itself.
"""

from __future__ import annotations

import multiprocessing

import pytest

from ledger import codec, samples
from ledger.client import Ledger
from ledger.config import open_log
from ledger.errors import ConflictError, RuleViolation
from ledger.events import ModelTrained

MODEL = "churn"
WORKERS = 4
EVENTS_PER_WORKER = 8
TIMEOUT_S = 120

spawn = multiprocessing.get_context("spawn")
pytestmark = pytest.mark.slow  # every test starts several Python processes


# --- workers (module level so that ``spawn`` can import them) ---------------------


def _trained_by(actor: str) -> ModelTrained:
    """Version 2 of the model, as trained by ``actor`` (its own artifact)."""
    return samples.trained(MODEL, 2, actor=actor).model_copy(
        update={"artifact_uri": f"file:///artifacts/{actor}/v2.joblib", "artifact_hash": f"sha256:{actor}"}
    )


def _train_version_2(url: str, actor: str, barrier, results) -> None:
    with Ledger.open(url) as ledger:
        draft = _trained_by(actor)
        barrier.wait(TIMEOUT_S)
        try:
            accepted = ledger.emit(draft)
        except ConflictError as exc:
            results.put((actor, "conflict", str(exc)))
        except RuleViolation as exc:
            results.put((actor, exc.rule, str(exc)))
        else:
            results.put((actor, "accepted", accepted.event.sequence))


def _snapshot_many(url: str, worker: int, count: int, barrier, results) -> None:
    with Ledger.open(url) as ledger:
        drafts = [samples.snapshot(MODEL, f"w{worker}-{i}") for i in range(count)]
        barrier.wait(TIMEOUT_S)
        accepted, conflicts = [], 0
        for draft in drafts:
            # ConflictError means "another writer kept winning, try again"; a client
            # retries with the same event id, which can never write it twice.
            for _ in range(20):
                try:
                    accepted.append(ledger.emit(draft))
                    break
                except ConflictError:
                    conflicts += 1
        results.put((worker, [(str(a.event.event_id), a.event.sequence, a.duplicate) for a in accepted], conflicts))


def _claim_ids(url: str, model: str, ids: list[str], barrier, results) -> None:
    """For each id in turn, at the same moment as the other workers: append a
    snapshot of ``model`` under that event id (retrying "try again")."""
    with Ledger.open(url) as ledger:
        outcomes = []
        for number, event_id in enumerate(ids):
            draft = samples.snapshot(model, f"s{number}").model_copy(update={"event_id": event_id})
            barrier.wait(TIMEOUT_S)
            for _ in range(20):
                try:
                    ledger.emit(draft)
                    outcomes.append((event_id, "accepted"))
                    break
                except ConflictError:
                    continue
                except RuleViolation as exc:
                    outcomes.append((event_id, exc.rule))
                    break
            else:
                outcomes.append((event_id, "conflict"))
        results.put((model, outcomes))


def _zombie(url: str, pause_at: str, ready, go, results) -> None:
    """Holds the writer role, decides to train version 2 on the state it read, then
    stalls (before its transaction, or with it open) while another process writes."""
    log = open_log(url)
    ledger = Ledger(log)
    ledger.emit(samples.snapshot(MODEL, "zombie-warm-up"))  # now this process holds the writer role
    plans = 0

    def stall():
        ready.set()
        go.wait(TIMEOUT_S)

    inner_append = log.append

    def append(model, plan):
        def stalling_plan(view):
            nonlocal plans
            plans += 1
            records = plan(view)
            if plans == 1 and pause_at == "after-plan":
                stall()
            return records

        return inner_append(model, stalling_plan)

    log.append = append
    if pause_at == "before-commit":
        # The write path commits through its bounded wrapper of commit_transaction.
        import ledger.backends.kafka as kafka_log

        real_commit = kafka_log._commit
        stalled = False

        def commit_transaction(producer, timeout_s):
            nonlocal stalled
            if not stalled:
                stalled = True
                stall()
            return real_commit(producer, timeout_s)

        kafka_log._commit = commit_transaction
    try:
        accepted = ledger.emit(_trained_by("zombie"))
    except RuleViolation as exc:
        results.put(("refused", exc.rule, plans))
    else:
        results.put(("accepted", accepted.event.sequence, plans))
    finally:
        ledger.close()


# --- helpers -----------------------------------------------------------------------


def _run(target, argsets) -> None:
    processes = [spawn.Process(target=target, args=args) for args in argsets]
    for process in processes:
        process.start()
    for process in processes:
        process.join(TIMEOUT_S)
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.kill()
    assert not alive, "a writer process hung"
    assert [p.exitcode for p in processes] == [0] * len(processes)


def _drain(results, count):
    return [results.get(timeout=TIMEOUT_S) for _ in range(count)]


def _trained_versions(log, version):
    events = [codec.decode(r.data) for r in log.read(model=MODEL)]
    return [e for e in events if isinstance(e, ModelTrained) and e.version == version]


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("kafka", id="kafka", marks=pytest.mark.kafka),
    ]
)
def url(request):
    if request.param == "embedded":
        return request.getfixturevalue("sqlite_log_url")
    return request.getfixturevalue("kafka_log_url")


# --- the races ---------------------------------------------------------------------


def test_one_event_id_raced_onto_models_of_different_partitions_is_accepted_once(url):
    # Event ids are unique in the whole log. On Kafka the models below live on
    # different partitions, whose writers cannot fence each other.
    import uuid

    with Ledger.open(url) as ledger:
        by_partition = {}
        for i in range(30):
            by_partition.setdefault(ledger.log.partition_for(f"m{i}") if hasattr(ledger.log, "partition_for") else i, f"m{i}")
        models = list(by_partition.values())[:3]
        if len(models) < 3:  # one partition (the embedded log): three models on it
            models = [f"m{i}" for i in range(3)]
    ids = [str(uuid.uuid4()) for _ in range(6)]
    barrier, results = spawn.Barrier(len(models)), spawn.Queue()

    _run(_claim_ids, [(url, model, ids, barrier, results) for model in models])
    outcomes = dict(_drain(results, len(models)))

    for number, event_id in enumerate(ids):
        answers = [dict(outcomes[m])[event_id] for m in models]
        assert answers.count("accepted") == 1, (number, answers)
        assert set(answers) == {"accepted", "event-id-unique"}, (number, answers)
    with Ledger.open(url) as ledger:
        stored = [str(codec.decode(r.data).event_id) for r in ledger.log.read()]
        assert sorted(stored) == sorted(ids)
        assert ledger.verify().ok


def test_racing_writers_of_one_version_exactly_one_wins(url):
    with Ledger.open(url) as ledger:
        ledger.emit(samples.snapshot(MODEL))
        ledger.emit(samples.trained(MODEL, 1))
    barrier, results = spawn.Barrier(WORKERS), spawn.Queue()

    _run(_train_version_2, [(url, f"trainer-{i}", barrier, results) for i in range(WORKERS)])
    outcomes = _drain(results, WORKERS)

    winners = [o for o in outcomes if o[1] == "accepted"]
    assert len(winners) == 1, outcomes
    assert winners[0][2] == 3
    assert {o[1] for o in outcomes if o is not winners[0]} <= {"version-never-reused", "conflict"}, outcomes
    with Ledger.open(url) as ledger:
        (stored,) = _trained_versions(ledger.log, 2)
        assert stored.actor == winners[0][0]
        assert ledger.state(MODEL).sequence == 3
        assert ledger.verify().ok


def test_concurrent_distinct_events_are_all_accepted_without_gaps(url):
    with Ledger.open(url) as ledger:
        ledger.emit(samples.snapshot(MODEL, "first"))
    barrier, results = spawn.Barrier(WORKERS), spawn.Queue()

    _run(_snapshot_many, [(url, w, EVENTS_PER_WORKER, barrier, results) for w in range(WORKERS)])
    outcomes = _drain(results, WORKERS)

    answered = [item for _, accepted, _ in outcomes for item in accepted]
    assert len(answered) == WORKERS * EVENTS_PER_WORKER
    assert not any(duplicate for _, _, duplicate in answered)
    total = 1 + WORKERS * EVENTS_PER_WORKER
    assert sorted(sequence for _, sequence, _ in answered) == list(range(2, total + 1))
    with Ledger.open(url) as ledger:
        events = list(ledger.events(MODEL))
        assert [e.sequence for e in events] == list(range(1, total + 1))
        assert {str(e.event_id): e.sequence for e in events[1:]} == {i: s for i, s, _ in answered}
        report = ledger.verify()
        assert report.ok, report.problems
        assert report.events == total


@pytest.mark.kafka
@pytest.mark.parametrize("pause_at", ["after-plan", "before-commit"])
def test_a_fenced_zombie_cannot_commit_stale_state(kafka_log_url, pause_at):
    with Ledger.open(kafka_log_url) as ledger:
        ledger.emit(samples.snapshot(MODEL))
        ledger.emit(samples.trained(MODEL, 1))
    ready, go, results = spawn.Event(), spawn.Event(), spawn.Queue()
    zombie = spawn.Process(target=_zombie, args=(kafka_log_url, pause_at, ready, go, results))
    zombie.start()
    try:
        assert ready.wait(TIMEOUT_S), "the zombie never reached its stall"
        # Another process takes the writer role (fencing the zombie) and trains v2.
        with Ledger.open(kafka_log_url) as ledger:
            winner = ledger.emit(_trained_by("carol"))
        go.set()
        outcome = results.get(timeout=TIMEOUT_S)
    finally:
        go.set()
        zombie.join(TIMEOUT_S)
        if zombie.is_alive():
            zombie.kill()
    assert zombie.exitcode == 0

    # The zombie's commit was refused; it re-read the log, re-decided, and was told no.
    assert outcome == ("refused", "version-never-reused", 2)
    with Ledger.open(kafka_log_url) as ledger:
        (stored,) = _trained_versions(ledger.log, 2)
        assert stored.actor == "carol"
        assert stored.sequence == winner.event.sequence == 4
        report = ledger.verify()
        assert report.ok, report.problems
        assert report.events == 4

