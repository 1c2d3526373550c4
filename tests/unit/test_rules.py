"""Every lifecycle rule, table-driven: a history, then an event that passes and
one that breaks the rule. Pure: no log, no I/O."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from ledger import rules, samples
from ledger.errors import LedgerError, RuleViolation
from ledger.events import ApprovalRejected, ColumnSpec, DataContract, ModelDeployed, ModelEvaluated, utcnow

M = "pm"


def fold(events):
    state = rules.ModelState(M)
    for sequence, event in enumerate(events, start=1):
        checked = rules.check(state, event)
        state = rules.apply(state, checked.model_copy(update={"sequence": sequence}), f"{sequence:064x}")
    return state


THROUGH_APPROVAL = [samples.snapshot(M), samples.trained(M), samples.evaluated(M), samples.approved(M)]
DEPLOYED = [*THROUGH_APPROVAL, samples.deployed(M)]
ALERT = samples.drift(M)
NOW = utcnow()


def _evaluation(value, threshold, passed, thresholds=None):
    return ModelEvaluated(
        model=M,
        version=1,
        actor="ci",
        evaluation_snapshot_id="s1",
        metrics={"roc_auc": value},
        thresholds=thresholds if thresholds is not None else ({"roc_auc": threshold} if threshold is not None else {}),
        passed=passed,
    )


def judge(state, event):
    """What the append path does with a new event: its own checks, then the history's.
    Admitted against the clock now, as the append path does: an event made during
    the test is not "in the future" of a clock read when the module was imported."""
    rules.admit(event, utcnow())
    return rules.check(state, event)

CASES = [
    # rule, history, passing event, failing event
    (rules.SNAPSHOT_UNIQUE, [samples.snapshot(M)], samples.snapshot(M, "s2"), samples.snapshot(M, "s1")),
    (rules.SNAPSHOT_EXISTS, [samples.snapshot(M)], samples.trained(M), samples.trained(M, snapshots=("s1", "nope"))),
    (rules.SNAPSHOT_EXISTS, [samples.snapshot(M), samples.trained(M)], samples.evaluated(M), samples.evaluated(M, snapshot_id="nope")),
    (rules.VERSION_UNIQUE, [samples.snapshot(M), samples.trained(M)], samples.trained(M, 2), samples.trained(M, 1)),
    (
        rules.VERSION_UNIQUE,
        [samples.snapshot(M), samples.trained(M), samples.retired(M, 1)],
        samples.trained(M, 2),
        samples.trained(M, 1),
    ),
    (rules.PARENT_EXISTS, [samples.snapshot(M), samples.trained(M)], samples.trained(M, 2, parent_version=1), samples.trained(M, 2, parent_version=7)),
    (rules.VERSION_EXISTS, [samples.snapshot(M), samples.trained(M)], samples.evaluated(M, 1), samples.evaluated(M, 2)),
    (rules.EVALUATED_BEFORE_APPROVAL, [samples.snapshot(M), samples.trained(M), samples.evaluated(M)], samples.approved(M), None),
    (rules.EVALUATED_BEFORE_APPROVAL, [samples.snapshot(M), samples.trained(M)], None, samples.approved(M)),
    (
        rules.EVALUATED_BEFORE_APPROVAL,
        [samples.snapshot(M), samples.trained(M), samples.evaluated(M, passed=False)],
        ApprovalRejected(model=M, version=1, actor="bob"),
        samples.approved(M),
    ),
    (rules.FOUR_EYES, [samples.snapshot(M), samples.trained(M, actor="alice"), samples.evaluated(M)], samples.approved(M, actor="bob"), samples.approved(M, actor="alice")),
    (
        rules.FOUR_EYES,
        [samples.snapshot(M), samples.trained(M, actor="alice"), samples.evaluated(M)],
        ApprovalRejected(model=M, version=1, actor="bob"),
        ApprovalRejected(model=M, version=1, actor="alice"),
    ),
    # Four eyes compares identities, not spellings: case, compatibility forms and
    # look-alike letters from another script are the trainer again.
    (rules.FOUR_EYES, [samples.snapshot(M), samples.trained(M, actor="alice"), samples.evaluated(M)], samples.approved(M, actor="alicia"), samples.approved(M, actor="Alice")),
    (rules.FOUR_EYES, [samples.snapshot(M), samples.trained(M, actor="alice"), samples.evaluated(M)], None, samples.approved(M, actor="\uff21\uff2c\uff29\uff23\uff25")),
    # One script throughout, so a valid name, yet it reads as the trainer's: асе.
    (rules.FOUR_EYES, [samples.snapshot(M), samples.trained(M, actor="ace"), samples.evaluated(M)], None, samples.approved(M, actor="\u0430\u0441\u0435")),
    (
        rules.FOUR_EYES,
        [samples.snapshot(M), samples.trained(M, actor="Stra\u00dfe"), samples.evaluated(M)],
        None,
        ApprovalRejected(model=M, version=1, actor="STRASSE"),
    ),
    (rules.ALREADY_DECIDED, THROUGH_APPROVAL, samples.deployed(M), samples.approved(M, actor="carol")),
    (rules.APPROVED_BEFORE_DEPLOY, THROUGH_APPROVAL, samples.deployed(M), None),
    (rules.APPROVED_BEFORE_DEPLOY, [samples.snapshot(M), samples.trained(M), samples.evaluated(M)], None, samples.deployed(M)),
    (
        rules.APPROVED_BEFORE_DEPLOY,
        [*THROUGH_APPROVAL, ApprovalRejected(model=M, version=1, actor="carol")],
        None,
        samples.deployed(M),
    ),
    (
        rules.APPROVED_BEFORE_DEPLOY,
        [*THROUGH_APPROVAL, samples.evaluated(M, passed=False)],
        None,
        samples.deployed(M),
    ),
    # Decisions go stale: an approval covers the evaluations recorded before it.
    (
        rules.APPROVED_BEFORE_DEPLOY,
        [*THROUGH_APPROVAL, samples.evaluated(M, passed=False), samples.evaluated(M, passed=True)],
        samples.approved(M, actor="carol"),  # the new decision is allowed
        samples.deployed(M),  # the old approval does not cover the new evaluations
    ),
    (
        rules.APPROVED_BEFORE_DEPLOY,
        [*THROUGH_APPROVAL, samples.evaluated(M, passed=False), samples.evaluated(M, passed=True), samples.approved(M, actor="carol")],
        samples.deployed(M),
        None,
    ),
    (rules.APPROVED_BEFORE_DEPLOY, [*THROUGH_APPROVAL, samples.evaluated(M)], samples.approved(M), samples.deployed(M)),
    (
        rules.APPROVED_BEFORE_DEPLOY,
        [*DEPLOYED, samples.evaluated(M)],
        samples.approved(M),
        samples.deployed(M, environment="staging"),
    ),
    (
        rules.EVALUATED_BEFORE_APPROVAL,
        [*THROUGH_APPROVAL, samples.evaluated(M, passed=False)],
        ApprovalRejected(model=M, version=1, actor="carol"),
        samples.approved(M, actor="carol"),
    ),
    (
        rules.ALREADY_DECIDED,
        [samples.snapshot(M), samples.trained(M), samples.evaluated(M, passed=False), ApprovalRejected(model=M, version=1, actor="bob")],
        None,
        ApprovalRejected(model=M, version=1, actor="carol"),
    ),
    (
        rules.ALREADY_DECIDED,
        [samples.snapshot(M), samples.trained(M), samples.evaluated(M, passed=False), ApprovalRejected(model=M, version=1, actor="bob"), samples.evaluated(M)],
        ApprovalRejected(model=M, version=1, actor="carol"),  # a new evaluation reopens the decision
        None,
    ),
    # Evaluations add up: thresholds are minimums (the schema's doc), passed is
    # "every threshold met"; a metric without a threshold is informative only.
    (rules.EVALUATION_ADDS_UP, [samples.snapshot(M), samples.trained(M)], samples.evaluated(M), _evaluation(0.55, 0.7, True)),
    (rules.EVALUATION_ADDS_UP, [samples.snapshot(M), samples.trained(M)], _evaluation(0.55, 0.7, False), _evaluation(0.91, 0.7, False)),
    (rules.EVALUATION_ADDS_UP, [samples.snapshot(M), samples.trained(M)], _evaluation(0.7, 0.7, True), _evaluation(0.91, None, True, thresholds={"f1": 0.5})),
    (rules.EVALUATION_ADDS_UP, [samples.snapshot(M), samples.trained(M)], _evaluation(0.2, None, True), _evaluation(0.6999, 0.7, True)),
    # References point where they claim.
    (rules.RETIRE_KNOWN_MODEL, [samples.snapshot(M)], samples.retired(M, None), None),
    (rules.RETIRE_KNOWN_MODEL, [], None, samples.retired(M, None)),
    (
        rules.PARENT_EXISTS,
        [samples.snapshot(M), samples.trained(M, 1), samples.trained(M, 3)],
        samples.trained(M, 4, parent_version=3),
        samples.trained(M, 2, parent_version=3),
    ),
    (rules.PARENT_EXISTS, [samples.snapshot(M), samples.trained(M, 1)], None, samples.trained(M, 2, parent_version=2)),
    (
        rules.TRIGGER_ALERT,
        [*DEPLOYED, ALERT],
        samples.trained(M, 2, parent_version=1, trigger="drift", trigger_alert_id=str(ALERT.event_id)),
        samples.trained(M, 2, parent_version=1, trigger="drift", trigger_alert_id=str(uuid.uuid4())),
    ),
    (
        rules.TRIGGER_ALERT,
        [*DEPLOYED, ALERT],
        None,
        samples.trained(M, 2, parent_version=1, trigger="drift", trigger_alert_id=str(DEPLOYED[-1].event_id)),  # not an alert
    ),
    (
        rules.CONTRACT_BOUNDS,
        [],
        samples.snapshot(M, contract=DataContract(columns=(ColumnSpec(name="t", minimum=1.0, maximum=1.0),))),
        samples.snapshot(M, contract=DataContract(columns=(ColumnSpec(name="t", minimum=5.0, maximum=1.0),))),
    ),
    (rules.ALREADY_DEPLOYED, DEPLOYED, samples.deployed(M, environment="staging"), samples.deployed(M)),
    (rules.DRIFT_ON_DEPLOYED, DEPLOYED, samples.drift(M), samples.drift(M, environment="staging")),
    (rules.DRIFT_ON_DEPLOYED, [*DEPLOYED, samples.trained(M, 2)], samples.drift(M, 1), samples.drift(M, 2)),
    (rules.RETIRED, [*DEPLOYED, samples.retired(M, 1)], samples.trained(M, 2), samples.deployed(M, environment="staging")),
    (rules.RETIRED, [*DEPLOYED, samples.retired(M, 1)], None, samples.evaluated(M)),
    (rules.RETIRED, [*DEPLOYED, samples.retired(M, 1)], None, samples.retired(M, 1)),
    (rules.MODEL_RETIRED, [*DEPLOYED, samples.retired(M, None)], None, samples.snapshot(M, "s9")),
    (rules.MODEL_MISMATCH, [samples.snapshot(M)], samples.snapshot(M, "s2"), samples.snapshot("other", "s2")),
]


@pytest.mark.parametrize(("rule", "history", "good", "bad"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule(rule, history, good, bad):
    state = fold(history)
    if good is not None:
        judge(state, good)
    if bad is not None:
        with pytest.raises(LedgerError) as caught:
            judge(state, bad)
        assert caught.value.rule == rule
        assert caught.value.reason  # a person can read why


def test_deploy_records_the_version_it_replaces():
    state = fold([*DEPLOYED, samples.trained(M, 2), samples.evaluated(M, 2), samples.approved(M, 2)])
    checked = rules.check(state, samples.deployed(M, 2))
    assert isinstance(checked, ModelDeployed)
    assert checked.replaced_version == 1


def test_roll_back_to_a_previous_version_is_allowed():
    history = [*DEPLOYED, samples.trained(M, 2), samples.evaluated(M, 2), samples.approved(M, 2), samples.deployed(M, 2)]
    state = fold(history)
    assert rules.check(state, samples.deployed(M, 1)).replaced_version == 2


def test_retiring_a_deployed_version_takes_it_out_of_every_environment():
    state = fold([*DEPLOYED, samples.deployed(M, environment="staging"), samples.retired(M, 1)])
    assert state.deployed == {}
    assert state.versions[1].status == "retired"


def test_status_follows_the_lifecycle():
    statuses = []
    state = rules.ModelState(M)
    for sequence, event in enumerate(DEPLOYED, start=1):
        state = rules.apply(state, rules.check(state, event).model_copy(update={"sequence": sequence}), "0" * 64)
        if 1 in state.versions:
            statuses.append(state.versions[1].status)
    assert statuses == ["trained", "evaluated", "approved", "approved"]
    assert state.deployed == {"production": 1}
    assert state.sequence == len(DEPLOYED)


# --- field feedback and degradation alerts -------------------------------------

FEEDBACK = samples.feedback(M)
WITH_FEEDBACK = [*DEPLOYED, FEEDBACK]

FEEDBACK_CASES = [
    # rule, history, passing event, failing event
    (rules.FEEDBACK_ON_DEPLOYED, DEPLOYED, samples.feedback(M), samples.feedback(M, environment="staging")),
    (rules.FEEDBACK_ON_DEPLOYED, [*DEPLOYED, samples.trained(M, 2)], samples.feedback(M, 1), samples.feedback(M, 2)),
    (rules.RETIRED, [*DEPLOYED, samples.retired(M, 1)], None, samples.feedback(M, 1)),
    (rules.FEEDBACK_CONSISTENT, DEPLOYED, samples.feedback(M, confirmed=40), samples.feedback(M, confirmed=41)),
    (rules.FEEDBACK_CONSISTENT, DEPLOYED, samples.feedback(M, alarms=200), samples.feedback(M, alarms=201)),
    (rules.FEEDBACK_CONSISTENT, DEPLOYED, samples.feedback(M, predictions=40), samples.feedback(M, predictions=-1)),
    (rules.FEEDBACK_CONSISTENT, DEPLOYED, samples.feedback(M, unlabelled=0), samples.feedback(M, unlabelled=-3)),
    (rules.FEEDBACK_CONSISTENT, DEPLOYED, samples.feedback(M, confirmed=0), samples.feedback(M, confirmed=-1, alarms=-1)),
    (
        rules.FEEDBACK_CONSISTENT,
        DEPLOYED,
        samples.feedback(M, metrics={"precision": 1.0, "false_alarm_rate": 0.0}),
        samples.feedback(M, metrics={"precision": 1.2}),
    ),
    (
        rules.FEEDBACK_CONSISTENT,
        DEPLOYED,
        samples.feedback(M, metrics={"recall": 0.0}),
        samples.feedback(M, metrics={"false_alarm_rate": -0.1}),
    ),
    (
        rules.FINITE_NUMBERS,  # a new event's numbers are judged before the history rules
        DEPLOYED,
        samples.feedback(M, metrics={"mean_lead_time_hours": 31.5}),
        samples.feedback(M, metrics={"accuracy": float("nan")}),
    ),
    (
        rules.FEEDBACK_CONSISTENT,
        DEPLOYED,
        samples.feedback(M, window_end="2026-03-01T00:00:00Z"),
        samples.feedback(M, window_end="2026-02-28T23:59:59Z"),
    ),
    (
        rules.DEGRADATION_NAMES_FEEDBACK,
        WITH_FEEDBACK,
        samples.degraded(M, str(FEEDBACK.event_id)),
        samples.degraded(M, "00000000-0000-0000-0000-000000000000"),
    ),
    (
        rules.DEGRADATION_NAMES_FEEDBACK,
        [*WITH_FEEDBACK, samples.deployed(M, environment="staging")],
        samples.degraded(M, str(FEEDBACK.event_id), environment="production"),
        samples.degraded(M, str(FEEDBACK.event_id), environment="staging"),
    ),
    (
        rules.DEGRADATION_NAMES_FEEDBACK,
        [*WITH_FEEDBACK, samples.trained(M, 2)],
        None,
        samples.degraded(M, str(FEEDBACK.event_id), version=2),
    ),
]


@pytest.mark.parametrize(
    ("rule", "history", "good", "bad"), FEEDBACK_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FEEDBACK_CASES)]
)
def test_feedback_rule(rule, history, good, bad):
    test_rule(rule, history, good, bad)


def test_a_degradation_alert_cannot_name_another_models_feedback():
    other = fold(WITH_FEEDBACK)  # stream "pm" holds FEEDBACK
    mine = rules.ModelState("pm2")
    for sequence, event in enumerate([e.model_copy(update={"model": "pm2"}) for e in DEPLOYED], start=1):
        mine = rules.apply(mine, rules.check(mine, event).model_copy(update={"sequence": sequence}), "0" * 64)
    alert = samples.degraded("pm2", str(FEEDBACK.event_id))
    rules.check(other, samples.degraded(M, str(FEEDBACK.event_id)))
    with pytest.raises(RuleViolation) as caught:
        rules.check(mine, alert)
    assert caught.value.rule == rules.DEGRADATION_NAMES_FEEDBACK


def test_a_degradation_alert_names_feedback_recorded_before_it_even_after_a_redeploy():
    # The new version replaced the one the feedback was about: the alert on the old
    # version's feedback still names a real fact (the retraining it asks for is
    # what produced the new version).
    history = [*WITH_FEEDBACK, samples.trained(M, 2), samples.evaluated(M, 2), samples.approved(M, 2), samples.deployed(M, 2)]
    rules.check(fold(history), samples.degraded(M, str(FEEDBACK.event_id)))


def test_a_retraining_may_name_a_degradation_alert_as_its_trigger():
    # The trigger rule (issue 9) knows drift alerts and degradation alerts alike:
    # the retraining consumer answers both.
    alert = samples.degraded(M, str(FEEDBACK.event_id))
    state = fold([*WITH_FEEDBACK, alert])
    judge(state, samples.trained(M, 2, parent_version=1, trigger="degradation", trigger_alert_id=str(alert.event_id)))
    with pytest.raises(LedgerError) as caught:
        judge(state, samples.trained(M, 2, parent_version=1, trigger="degradation", trigger_alert_id=str(FEEDBACK.event_id)))
    assert caught.value.rule == rules.TRIGGER_ALERT


@pytest.mark.parametrize(
    ("occurred_at", "ok"),
    [
        (NOW, True),
        (NOW - timedelta(days=3000), True),
        (NOW + rules.CLOCK_SKEW - timedelta(seconds=1), True),
        (NOW + rules.CLOCK_SKEW + timedelta(seconds=1), False),
        (NOW + timedelta(days=365 * 100), False),
        (datetime(1970, 1, 1, tzinfo=timezone.utc), True),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc), False),
        (datetime(1, 1, 1, tzinfo=timezone.utc), False),
    ],
)
def test_occurred_at_is_neither_in_the_future_nor_before_1970(occurred_at, ok):
    draft = samples.snapshot(M).model_copy(update={"occurred_at": occurred_at})
    if ok:
        rules.admit(draft, NOW)
        return
    with pytest.raises(LedgerError) as caught:
        rules.admit(draft, NOW)
    assert caught.value.rule == rules.OCCURRED_AT_RANGE
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "draft",
    [
        _evaluation(float("nan"), 0.7, False),
        _evaluation(float("inf"), None, True),
        samples.drift(M, value=float("-inf")),
    ],
)
def test_numbers_of_a_new_event_are_finite(draft):
    with pytest.raises(LedgerError) as caught:
        rules.admit(draft, NOW)
    assert caught.value.rule == rules.FINITE_NUMBERS


# Histories the ledger accepted before issue 9 tightened these rules: replaying them
# (verify, the append path's fold) still accepts them; a new event is held to the
# rules as they are now.
RECORDED_BEFORE = [
    ([], samples.retired(M, None)),
    ([samples.snapshot(M), samples.trained(M, actor="alice"), samples.evaluated(M)], samples.approved(M, actor="Alice")),
    ([*THROUGH_APPROVAL, samples.evaluated(M, passed=False), samples.evaluated(M)], samples.deployed(M)),
    ([samples.snapshot(M), samples.trained(M, 1), samples.trained(M, 3)], samples.trained(M, 2, parent_version=3)),
    ([*DEPLOYED], samples.trained(M, 2, trigger="drift", trigger_alert_id=str(uuid.uuid4()))),
]


@pytest.mark.parametrize(("history", "event"), RECORDED_BEFORE)
def test_histories_recorded_before_the_tightened_rules_still_replay(history, event):
    state = fold(history)
    rules.check(state, event, history=True)
    with pytest.raises(LedgerError):
        rules.check(state, event)


def test_replaying_a_stale_approval_still_refuses_what_was_always_refused():
    rejected_since = fold([*THROUGH_APPROVAL, ApprovalRejected(model=M, version=1, actor="carol"), samples.evaluated(M)])
    failing_since = fold([*THROUGH_APPROVAL, samples.evaluated(M, passed=False)])
    for state in (rejected_since, failing_since):
        with pytest.raises(LedgerError) as caught:
            rules.check(state, samples.deployed(M), history=True)
        assert caught.value.rule == rules.APPROVED_BEFORE_DEPLOY


TRAINED_BY_RUNNER = [samples.snapshot(M), samples.trained(M, actor="runner"), samples.evaluated(M)]
TRAINED_FOR_ALICE = [samples.snapshot(M), samples.trained(M).model_copy(update={"recorded_by": "runner"}), samples.evaluated(M)]


@pytest.mark.parametrize(
    "history, decision, why",
    [
        # the runner trained, then records an approval naming someone else
        (TRAINED_BY_RUNNER, samples.approved(M).model_copy(update={"recorded_by": "runner"}), "'runner' trained pm@1 and cannot also approve it, not even as 'bob'"),
        # the runner recorded alice's training, then approves in its own name
        (TRAINED_FOR_ALICE, samples.approved(M, actor="runner"), "'runner' recorded the training of pm@1 (as 'alice') and cannot also approve it"),
        # ... or records the approval as bob: one principal behind both
        (TRAINED_FOR_ALICE, samples.approved(M).model_copy(update={"recorded_by": "runner"}), "four eyes needs a second principal"),
        # the runner records alice's own rejection of what it recorded as hers
        (TRAINED_FOR_ALICE, ApprovalRejected(model=M, version=1, actor="alice", recorded_by="runner"), "'alice' trained pm@1 and cannot also reject it"),
        # a look-alike spelling of the recording principal is the same principal
        (TRAINED_BY_RUNNER, samples.approved(M).model_copy(update={"recorded_by": "RUNNER"}), "(the same person as 'runner')"),
    ],
)
def test_four_eyes_counts_whoever_recorded_on_anothers_behalf(history, decision, why):
    with pytest.raises(RuleViolation) as refused:
        judge(fold(history), decision)
    assert refused.value.rule == rules.FOUR_EYES and why in str(refused.value)


def test_an_approval_recorded_by_a_second_principal_passes_four_eyes():
    # the runner recorded alice's training; bob approves himself, or a second runner records bob's approval
    state = fold(TRAINED_FOR_ALICE)
    assert judge(state, samples.approved(M)).actor == "bob"
    assert judge(state, samples.approved(M).model_copy(update={"recorded_by": "release-bot"})).recorded_by == "release-bot"
    assert fold([*TRAINED_FOR_ALICE, samples.approved(M)]).versions[1].trained_recorded_by == "runner"


def test_a_rule_snapshot_keeps_who_recorded_the_training_and_ignores_older_formats():
    import json

    from ledger import rule_snapshots

    state = fold(TRAINED_FOR_ALICE)
    restored = rule_snapshots.loads(rule_snapshots.dumps(state))
    assert restored.versions[1].trained_recorded_by == "runner"
    with pytest.raises(RuleViolation):
        judge(restored, samples.approved(M).model_copy(update={"recorded_by": "runner"}))
    # a format-1 snapshot knew nothing of recorded_by: the stream is folded instead
    older = {**json.loads(rule_snapshots.dumps(state)), "format": 1}
    assert rule_snapshots.loads(json.dumps(older).encode()) is None
