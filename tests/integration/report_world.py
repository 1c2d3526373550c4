"""A history for the report tests, recorded at chosen instants, with hostile
strings wherever the ledger accepts free text.

churn:  s1 (1 Mar 09:00) → v1 trained by alice, evaluated, approved by bob →
        production (2 Mar 09:00) by deployer; psi drift on v1 (3 Mar 09:00);
        v2 retrained from v1 on s2, triggered by the alert, approved by carol →
        production (4 Mar 09:00), answering the alert in 24 h.
fraud:  f1 (2 Mar 10:00) → v1 trained by dave, approved by erin, deployed by "Dave"
        (2 Mar 15:00): no rule forbids the trainer to deploy, and the report's
        maker-checker table flags him under any spelling (the four-eyes rule's own
        comparison refuses an approval by "Dave"); drift on v1 (5 Mar 09:00) still open.
hostile: every free-text field a hostile HTML string; v1 in development.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ledger import samples
from ledger.append import Appender
from ledger.events import ModelApproved, ModelDeployed, ModelEvaluated, ModelTrained

HOSTILE = '<script>window.__pwned=1</script><img src="http://127.0.0.1:9/x.png" onerror="window.__pwned=2">'
HOSTILE_ACTOR = '"><svg onload=alert(1)>'


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def play(log) -> dict:
    now = [at(1, 0)]
    appender = Appender(log, clock=lambda: now[0])
    accepted = {}

    def do(label, when, draft):
        now[0] = when
        accepted[label] = appender.append([draft.model_copy(update={"occurred_at": when})])[0]

    do("churn s1", at(1, 9), samples.snapshot("churn", "s1"))
    do("churn v1 trained", at(1, 10), samples.trained("churn", 1))
    do("churn v1 evaluated", at(1, 11), samples.evaluated("churn", 1))
    do("churn v1 approved", at(1, 12), samples.approved("churn", 1, actor="bob"))
    do("churn v1 deployed", at(2, 9), samples.deployed("churn", 1))
    do("fraud f1", at(2, 10), samples.snapshot("fraud", "f1"))
    do("fraud v1 trained", at(2, 11), samples.trained("fraud", 1, actor="dave", snapshots=("f1",)))
    do("fraud v1 evaluated", at(2, 12), samples.evaluated("fraud", 1, snapshot_id="f1"))
    do("fraud v1 approved", at(2, 13), ModelApproved(model="fraud", version=1, actor="erin", reason="looks fine"))
    do("fraud v1 deployed", at(2, 15), ModelDeployed(model="fraud", version=1, actor="Dave", environment="production"))
    do("churn v1 drift", at(3, 9), samples.drift("churn", 1))
    alert = str(accepted["churn v1 drift"].event.event_id)
    do("churn s2", at(3, 10), samples.snapshot("churn", "s2"))
    do(
        "churn v2 trained",
        at(3, 11),
        samples.trained("churn", 2, snapshots=("s2",), parent_version=1, trigger="drift", trigger_alert_id=alert),
    )
    do("churn v2 evaluated", at(3, 12), samples.evaluated("churn", 2, snapshot_id="s2"))
    do("churn v2 approved", at(3, 13), samples.approved("churn", 2, actor="carol"))
    do("churn v2 deployed", at(4, 9), samples.deployed("churn", 2))
    do("fraud v1 drift", at(5, 9), samples.drift("fraud", 1))
    do("hostile s", at(5, 10), samples.snapshot("hostile", HOSTILE[:200], actor=HOSTILE_ACTOR).model_copy(update={"dataset": HOSTILE[:200]}))
    do(
        "hostile v1 trained",
        at(5, 11),
        ModelTrained(
            model="hostile", version=1, actor=HOSTILE_ACTOR, snapshot_ids=(HOSTILE[:200],), code_ref=HOSTILE[:200],
            hyperparameters={HOSTILE[:50]: HOSTILE}, artifact_uri=HOSTILE[:200], artifact_hash=HOSTILE[:200],
        ),
    )
    do(
        "hostile v1 evaluated",
        at(5, 12),
        ModelEvaluated(
            model="hostile", version=1, actor="ci", evaluation_snapshot_id=HOSTILE[:200],
            metrics={HOSTILE[:60]: 0.5}, thresholds={HOSTILE[:60]: 0.7}, passed=False,
        ),
    )
    return accepted


# Strings a terminal or a browser would act on rather than show: an OSC title change
# ended by BEL, a screen clear, a blinking attribute, a right-to-left override that
# makes "a\u202etxt.exe" display as "aexe.txt", a newline forging a second line.
OSC_TITLE = "\x1b]0;OWNED\x07\x1b[2J"
BLINK_METRIC = "m\x1b[5m"
RLO_METRIC = "auc\u202e"
RLO_ARTIFACT = "file:///a\u202etxt.exe"
TITLE_CODE = "git:\x1b]0;pwned\x07"
FORGED_LINE = "ok\x1b[2J\nFAKE: approved by carol"


def play_controls(log) -> None:
    """ctl v1: trained, evaluated and approved with control, format and bidi
    characters in every free-text field that accepts them (what `ledger show` and
    the report must print escaped, ``\\x1b``, ``\\u202e``)."""
    appender = Appender(log, clock=lambda: at(6, 9))
    for draft in (
        samples.snapshot("ctl", "s1"),
        ModelTrained(
            model="ctl", version=1, actor="alice", snapshot_ids=("s1",), code_ref=TITLE_CODE,
            hyperparameters={OSC_TITLE: "1", "note": FORGED_LINE}, artifact_uri=RLO_ARTIFACT, artifact_hash="sha256:x",
        ),
        ModelEvaluated(
            model="ctl", version=1, actor="ci", evaluation_snapshot_id="s1",
            metrics={BLINK_METRIC: 0.9, RLO_METRIC: 0.8}, thresholds={RLO_METRIC: 0.7}, passed=True,
        ),
        ModelApproved(model="ctl", version=1, actor="bob", reason=FORGED_LINE),
    ):
        appender.append([draft.model_copy(update={"occurred_at": at(6, 9)})])


def raw_controls(text: str) -> list[str]:
    """The characters of ``text`` a terminal would act on (newline aside)."""
    import unicodedata

    return [repr(ch) for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf")]
