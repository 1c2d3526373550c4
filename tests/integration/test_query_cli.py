"""The operators' and auditors' commands (`ledger models`, `show`, `lineage`,
`audit`, `replay`) as people and scripts use them, on the embedded log with SQLite
views and on a real Kafka broker with a real PostgreSQL.

The history (events recorded at chosen instants):

churn:  s1 (1 Mar 09:00) → v1 trained, evaluated, approved by bob → production (2 Mar 09:00);
        psi drift on v1 (3 Mar 09:00); s2 (3 Mar 10:00) → v2 retrained from v1 on s2,
        triggered by the alert; evaluated, approved by carol → production (4 Mar 09:00).
fraud:  f1 (2 Mar 10:00) → v1 trained, failed evaluation, rejected by dave (2 Mar 13:00).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from ledger import samples
from ledger.append import Appender
from ledger.cli import main
from ledger.config import open_log
from ledger.events import ApprovalRejected
from ledger.cli import query as query_cli
from report_world import BLINK_METRIC, OSC_TITLE, RLO_ARTIFACT, RLO_METRIC, play_controls, raw_controls


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def play(log) -> dict:
    """Append the history; the accepted events by label."""
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
    do("fraud f1", at(2, 10), samples.snapshot("fraud", "f1"))
    do("fraud v1 trained", at(2, 11), samples.trained("fraud", 1, snapshots=("f1",)))
    do("fraud v1 evaluated", at(2, 12), samples.evaluated("fraud", 1, passed=False, snapshot_id="f1"))
    do("fraud v1 rejected", at(2, 13), ApprovalRejected(model="fraud", version=1, actor="dave", reason="auc too low"))
    return accepted


EVENTS = 15


def new_pg_database(postgres_url: str):
    """A new PostgreSQL database (URL) and a function that drops it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(postgres_url).set(database=name).render_as_string(hide_password=False), drop


class World:
    def __init__(self, log_url: str, db_url: str, accepted: dict):
        self.log_url = log_url
        self.db_url = db_url
        self.accepted = accepted

    def run(self, *args: str, db: str | None = None):
        return CliRunner().invoke(main, ["--log", self.log_url, "--db", db or self.db_url, *args])

    def ok(self, *args: str, db: str | None = None) -> str:
        result = self.run(*args, db=db)
        assert result.exit_code == 0, result.output
        return result.stdout

    def json(self, *args: str, db: str | None = None):
        return json.loads(self.ok(*args, "--json", db=db))

    def position(self, label: str) -> str:
        p = self.accepted[label].position
        return f"{p.partition}:{p.offset}"


BACKENDS = ["embedded", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.postgres])]


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    """The history, played once per backend for the read-only tests of this module."""
    if request.param == "embedded":
        folder = tmp_path_factory.mktemp("world")
        log_url, db_url, drop = f"sqlite:///{folder / 'log.db'}", f"sqlite:///{folder / 'views.db'}", None
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        log_url = f"kafka://{bootstrap}/ledger-test-{uuid.uuid4().hex[:12]}?partitions=3"
        db_url, drop = new_pg_database(request.getfixturevalue("postgres_url"))
    with open_log(log_url) as log:
        accepted = play(log)
    yield World(log_url, db_url, accepted)
    if drop is not None:
        drop()


@pytest.fixture(params=BACKENDS)
def fresh(request, tmp_path):
    """An empty log and an empty projection database of each kind, for tests that write."""
    if request.param == "embedded":
        return World(f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'views.db'}", {})
    return World(request.getfixturevalue("kafka_log_url"), request.getfixturevalue("fresh_postgres"), {})


def table(text: str) -> list[dict]:
    """A table printed by the CLI, as dicts (the columns are separated by 2+ spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def rows_of_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# --- models ------------------------------------------------------------------------


def test_models_show_what_is_deployed_where_now_and_as_of_before(world):
    now = {r["MODEL"]: r for r in table(world.ok("models"))}
    assert set(now) == {"churn", "fraud"}
    assert now["churn"]["DEPLOYED"] == "production=v2"
    assert now["churn"]["LATEST_VERSION"] == "2"
    assert now["fraud"]["DEPLOYED"] == ""

    before = {m["model"]: m for m in world.json("models", "--as-of", "2026-03-03")}
    assert before["churn"]["deployed"] == {"production": 1}
    assert before["churn"]["latest_version"] == 1
    assert {m["model"]: m["deployed"] for m in world.json("models")} == {"churn": {"production": 2}, "fraud": {}}

    first_day = rows_of_csv(world.ok("models", "--csv", "--as-of", "2026-03-01T23:59:59Z"))
    assert [(r["model"], r["latest_version"], r["deployed"]) for r in first_day] == [("churn", "1", "")]


def test_models_answer_includes_an_event_emitted_just_before(fresh):
    with open_log(fresh.log_url) as log:
        Appender(log).append([samples.snapshot("pump", "p1")])
    assert [m["model"] for m in fresh.json("models")] == ["pump"]

    train = json.dumps(samples.trained("pump", 1, snapshots=("p1",)).model_dump(mode="json", exclude_none=True, exclude={"actor"}))
    emitted = CliRunner().invoke(main, ["--log", fresh.log_url, "emit", "train", "--actor", "alice", "--json", "-"], input=train)
    assert emitted.exit_code == 0, emitted.output
    assert [m["latest_version"] for m in fresh.json("models", "--no-refresh")] == [None]  # the views as they were
    assert [m["latest_version"] for m in fresh.json("models")] == [1]  # caught up first


# --- show --------------------------------------------------------------------------


def test_show_model_lists_versions_with_states_people_and_metrics(world):
    out = world.ok("show", "churn")
    assert out.splitlines()[0].startswith("churn: active, 2 version(s)")
    assert "deployed: production=v2" in out.splitlines()[0]
    versions = {r["VERSION"]: r for r in table("\n".join(out.splitlines()[1:]))}
    assert versions["1"]["STATUS"] == "approved" and versions["1"]["APPROVED_BY"] == "bob"
    assert versions["2"]["STATUS"] == "deployed" and versions["2"]["APPROVED_BY"] == "carol"
    assert versions["2"]["DEPLOYED_TO"] == "production"
    assert versions["2"]["METRICS"] == "roc_auc=0.91"
    assert versions["2"]["PARENT_VERSION"] == "1"

    answer = world.json("show", "fraud")
    assert answer["model"]["model"] == "fraud"
    [fraud1] = answer["versions"]
    assert (fraud1["status"], fraud1["rejected_by"], fraud1["decision_reason"]) == ("rejected", "dave", "auc too low")
    assert fraud1["metrics"] == {"roc_auc": 0.55}

    assert [r["status"] for r in rows_of_csv(world.ok("show", "churn", "--csv"))] == ["approved", "deployed"]


def test_show_version_in_full(world):
    alert = str(world.accepted["churn v1 drift"].event.event_id)
    text = world.ok("show", "churn@2")
    assert text.startswith("churn@2: deployed since 2026-03-04T09:00:00Z")
    for section in ("Data", "Hyper-parameters", "Evaluations", "Approvals", "Deployments", "Drift alerts", "History"):
        assert f"\n{section}\n" in text
    assert "s2: sensors sha256:s2, 1000 rows" in text
    assert "parent    v1" in text
    assert f"drift (drift alert {alert})" in text
    assert "max_depth     3" in text
    assert "by ci on s2: passed  roc_auc=0.91 (min 0.7)" in text
    assert "approved by carol: metrics above policy" in text
    assert "production: since 2026-03-04T09:00:00Z by deployer, replacing v1" in text

    v1 = world.ok("show", "churn@1")
    assert "until 2026-03-04T09:00:00Z by deployer (replaced by v2)" in v1
    assert f"psi on air_temperature = 0.4 (threshold 0.2, reference s1), by monitor (alert {alert})" in v1

    detail = world.json("show", "churn@2")
    assert detail["trigger_alert_id"] == alert and detail["parent_version"] == 1
    assert detail["snapshots"] == [
        {
            "snapshot_id": "s2",
            "dataset": "sensors",
            "content_hash": "sha256:s2",
            "row_count": 1000,
            "uri": "file:///data/s2.csv",
            "recorded_at": "2026-03-03T10:00:00.000000Z",
            "recorded_by": "etl",
        }
    ]
    assert detail["hyperparameters"] == {"max_depth": "3", "n_estimators": "100"}
    assert [(r["decision"], r["by"], r["reason"]) for r in detail["reviews"]] == [("approved", "carol", "metrics above policy")]
    assert [(d["environment"], d["since"], d["ended_at"]) for d in detail["deployments"]] == [
        ("production", "2026-03-04T09:00:00.000000Z", None)
    ]
    rejected = world.json("show", "fraud@1")
    assert [(r["decision"], r["by"], r["reason"]) for r in rejected["reviews"]] == [("rejected", "dave", "auc too low")]
    assert [e["passed"] for e in rejected["evaluations"]] == [False]
    assert [a["event_id"] for a in world.json("show", "churn@1")["drift_alerts"]] == [alert]


def test_show_version_prints_control_and_bidi_characters_escaped(tmp_path):
    """Keys (hyper-parameter and metric names) as well as values: an OSC title
    change, a screen clear or a right-to-left override recorded in the ledger reads
    as what it is, and JSON keeps the stored strings exact."""
    world = World(f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'views.db'}", {})
    with open_log(world.log_url) as log:
        play_controls(log)
    text = world.ok("show", "ctl@1")
    assert raw_controls(text) == []
    for shown in (
        "\\x1b]0;OWNED\\x07\\x1b[2J  1",
        "m\\x1b[5m=0.9",
        "auc\\u202e=0.8 (min 0.7)",
        "file:///a\\u202etxt.exe",
        "git:\\x1b]0;pwned\\x07",
        "approved by bob: ok\\x1b[2J\\x0aFAKE: approved by carol",
    ):
        assert shown in text, shown
    detail = world.json("show", "ctl@1")
    assert detail["hyperparameters"][OSC_TITLE] == "1"
    assert detail["evaluations"][0]["metrics"] == {BLINK_METRIC: 0.9, RLO_METRIC: 0.8}
    assert detail["artifact_uri"] == RLO_ARTIFACT


def test_show_as_of_an_instant_or_a_log_position(world):
    early = world.json("show", "churn", "--as-of", "2026-03-02T12:00:00Z")
    assert [(v["version"], v["status"], v["deployed_in"]) for v in early["versions"]] == [(1, "deployed", ["production"])]
    gone = world.run("show", "churn@2", "--as-of", "2026-03-02")
    assert gone.exit_code == 4
    assert "has no version 2 as of 2026-03-02" in gone.stderr
    v1 = world.json("show", "churn@1", "--as-of", "2026-03-03T12:00:00Z")
    assert v1["drift_alerts"] and v1["deployments"][0]["ended_at"] is None  # v2 not deployed yet

    cut = world.position("churn v1 evaluated")
    at_position = world.json("show", "churn@1", "--as-of-position", cut)
    assert at_position["status"] == "evaluated"
    assert at_position["reviews"] == [] and at_position["deployments"] == []


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("ghost", 4, "unknown model 'ghost'"),
        ("churn@9", 4, "model 'churn' has no version 9"),
        ("churn@x", 2, "use MODEL or MODEL@VERSION"),
        ("@2", 2, "use MODEL or MODEL@VERSION"),
        ("churn@0", 2, "out of range"),
        ("churn@99999999999999999999", 2, "out of range"),
        ("' OR 1=1 --", 4, "unknown model"),
        ("churn\x00", 2, "NUL"),
    ],
)
def test_show_rejects_unknown_and_malformed_targets(world, target, code, message):
    result = world.run("show", target, "--no-refresh")
    assert result.exit_code == code, result.output
    assert message in result.stderr or message in result.output
    assert "Traceback" not in result.output


def test_show_of_one_version_is_not_csv(world):
    result = world.run("show", "churn@1", "--csv", "--no-refresh")
    assert result.exit_code == 2
    assert "not a table" in result.output


# --- lineage -----------------------------------------------------------------------


def test_lineage_of_a_retrained_version_reaches_both_snapshots_and_the_alert(world):
    alert = str(world.accepted["churn v1 drift"].event.event_id)
    tree = world.ok("lineage", "churn@2")
    lines = tree.splitlines()
    assert lines[0].startswith("churn@2 (model_version)")
    assert any(line.startswith(("├── ", "└── ")) for line in lines[1:])
    assert "input ← sensors snapshot s2 (snapshot) · etl · 2026-03-03T10:00:00Z" in tree
    assert "sensors snapshot s1 (snapshot)" in tree
    assert "triggered ← psi drift on churn@1 in production (drift_alert) · monitor" in tree
    assert "parent_of ← churn@1 (model_version)" in tree

    graph = world.json("lineage", "churn@2", "--upstream")
    ids = {n["node_id"] for n in graph["nodes"]}
    assert {"snapshot:churn/s1", "snapshot:churn/s2", f"drift:churn/{alert}", "version:churn@1", "dataset:sensors"} <= ids
    assert graph["direction"] == "up"


def test_lineage_downstream_depth_and_as_of(world):
    down = world.json("lineage", "churn@1", "--downstream")
    ids = {n["node_id"] for n in down["nodes"]}
    assert "version:churn@2" in ids
    assert any(n["kind"] == "deployment" for n in down["nodes"])

    near = world.json("lineage", "churn@2", "--depth", "1")
    assert {n["kind"] for n in near["nodes"] if n["depth"] == 1} == {"training_run", "model_version"}
    assert max(n["depth"] for n in near["nodes"]) == 1
    near_tree = world.ok("lineage", "churn@2", "--depth", "1").splitlines()
    assert len(near_tree) == len(near["nodes"])

    before_retraining = world.json("lineage", "churn@1", "--downstream", "--as-of", "2026-03-03T09:30:00Z")
    kinds = {n["kind"] for n in before_retraining["nodes"]}
    assert "drift_alert" in kinds and "version:churn@2" not in {n["node_id"] for n in before_retraining["nodes"]}


def _dot_statements(text: str):
    """Node declarations and edges of the DOT this CLI writes, read with a tokenizer
    that honours quoted strings and their escapes."""
    token = re.compile(r'"(?:[^"\\]|\\.)*"|->|[{}\[\];=,]|[A-Za-z_][A-Za-z0-9_.]*|\S')
    body = text.strip()
    assert body.startswith("digraph ") and body.endswith("}")
    tokens = token.findall(body)
    assert tokens[:3] == ["digraph", "lineage", "{"] and tokens[-1] == "}"
    assert tokens.count("{") == 1 and tokens.count("}") == 1  # braces inside labels stay inside strings
    nodes, edges, statement = set(), [], []
    for tok in tokens[3:-1]:
        if tok != ";":
            statement.append(tok)
            continue
        if len(statement) > 2 and statement[1] == "->":
            edges.append((statement[0], statement[2]))
        elif statement and statement[0].startswith('"'):
            nodes.add(statement[0])
        statement = []
    assert not statement, "every statement ends with ;"
    return nodes, edges


def test_lineage_as_dot_is_a_digraph_whose_edges_join_declared_nodes(world):
    graph = world.json("lineage", "churn@2")
    dot = world.ok("lineage", "churn@2", "--format", "dot")
    nodes, edges = _dot_statements(dot)
    assert len(nodes) == len(graph["nodes"]) and len(edges) == len(graph["edges"])
    for src, dst in edges:
        assert src in nodes and dst in nodes
    assert '"snapshot:churn/s2" -> ' in dot


def test_graphviz_itself_reads_the_lineage_dot(world):
    # scripts/test installs Graphviz; where services are required (CI) a missing
    # `dot` is a failure, elsewhere a visible skip.
    if shutil.which("dot") is None:
        why = "Graphviz's dot is not on PATH; scripts/test installs it (apt-get install graphviz)"
        if os.environ.get("LEDGER_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    dot = world.ok("lineage", "churn@2", "--format", "dot")
    drawn = subprocess.run(["dot", "-Tcanon"], check=False, input=dot, capture_output=True, text=True)
    assert drawn.returncode == 0, drawn.stderr
    assert '"snapshot:churn/s2" -> ' in drawn.stdout


def test_lineage_as_mermaid_declares_every_node_it_links(world):
    graph = world.json("lineage", "churn@1", "--downstream")
    text = world.ok("lineage", "churn@1", "--downstream", "--format", "mermaid")
    lines = text.splitlines()
    assert lines[0] in ("flowchart LR", "flowchart TD", "graph TD", "graph LR")
    declared = {m.group(1) for line in lines if (m := re.fullmatch(r'\s+(n\d+)\["[^"]*"\]', line))}
    links = [re.fullmatch(r'\s+(n\d+) -->\|"[^"]*"\| (n\d+)', line) for line in lines if "-->" in line]
    assert all(links) and len(links) == len(graph["edges"])
    assert len(declared) == len(graph["nodes"])
    assert all(m.group(1) in declared and m.group(2) in declared for m in links)


def test_dot_and_mermaid_escape_labels():
    hostile = 'say "hi"\\ {x} [y] <b>#1 | ; -> \n next'
    result = {
        "root": "a",
        "direction": "up",
        "nodes": [
            {"node_id": 'a"; evil -> b', "kind": "snapshot", "label": hostile, "depth": 0},
            {"node_id": "b", "kind": None, "label": "b", "depth": 1},
        ],
        "edges": [{"src": "b", "dst": 'a"; evil -> b', "kind": "input"}],
    }
    result["root"] = 'a"; evil -> b'
    nodes, edges = _dot_statements(query_cli.lineage_dot(result))
    assert len(nodes) == 2 and len(edges) == 1
    assert edges[0][1] == '"a\\"; evil -> b"'
    mermaid = query_cli.lineage_mermaid(result)
    label_line = mermaid.splitlines()[1]
    inner = re.fullmatch(r'\s+n0\["(.*)"\]', label_line).group(1)
    assert "#34;hi#34;" in inner and "<br/>" in inner
    assert '"' not in inner and "[" not in inner and "|" not in inner


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ghost@1"], 4, "no lineage node 'version:ghost@1'"),
        (["churn@9"], 4, "no lineage node 'version:churn@9'"),
        (["churn@2", "--as-of", "2026-03-02"], 4, "as of 2026-03-02"),
        (["churn"], 2, "use MODEL@VERSION"),
        (["churn@2", "--format", "png"], 2, "'png' is not one of"),
        (["churn@2", "--depth", "-1"], 2, "--depth"),
        (["churn@2", "--as-of", "last tuesday"], 2, "malformed time"),
        (["churn@2", "--as-of", "2026-03-02", "--as-of-position", "0:1"], 2, "choose one"),
        (["churn@2\x00"], 2, "NUL"),
    ],
)
def test_lineage_bad_input(world, args, code, message):
    result = world.run("lineage", *args, "--no-refresh")
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --- audit -------------------------------------------------------------------------


def test_audit_filters_by_model_actor_type_and_time(world):
    everything = world.json("audit")
    assert len(everything) == EVENTS
    assert {r["chain"] for r in everything} == {"ok"}

    fraud = world.json("audit", "--model", "fraud")
    assert [r["event_type"] for r in fraud] == ["DataSnapshotted", "ModelTrained", "ModelEvaluated", "ApprovalRejected"]
    [carol] = world.json("audit", "--actor", "carol")
    assert (carol["event_type"], carol["model"], carol["version"]) == ("ModelApproved", "churn", 2)
    assert carol["event_id"] == str(world.accepted["churn v2 approved"].event.event_id)
    approvals = world.json("audit", "--type", "approve")
    assert [r["actor"] for r in approvals] == ["bob", "carol"]
    assert world.json("audit", "--type", "ModelApproved") == approvals
    assert [r["event_type"] for r in world.json("audit", "--since", "2026-03-04")] == ["ModelDeployed"]
    first_day = world.json("audit", "--until", "2026-03-02")  # a bare date: midnight UTC at its start
    assert [r["recorded_at"][:10] for r in first_day] == ["2026-03-01"] * 4
    assert len(world.json("audit", "--since", "2026-03-02T10:00:00+00:00", "--until", "2026-03-02T12:00Z")) == 3

    listed = rows_of_csv(world.ok("audit", "--model", "churn", "--type", "deploy", "--format", "csv"))
    assert [(r["version"], r["actor"], r["summary"]) for r in listed] == [
        ("1", "deployer", "deployed v1 to production"),
        ("2", "deployer", "deployed v2 to production, replacing v1"),
    ]
    shown = table(world.ok("audit", "--actor", "dave"))
    assert [(r["MODEL"], r["EVENT_TYPE"], r["CHAIN"]) for r in shown] == [("fraud", "ApprovalRejected", "ok")]


HOSTILE = ["' OR 1=1 --", "%", "_", "churn%", "c_urn", "*", '"; DROP TABLE audit_events; --', "churn' --", "x" * 10_000, "çhürn 🙂"]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_hostile_filter_strings_are_literals(world, value):
    as_actor = world.run("audit", "--actor", value, "--json", "--no-refresh")
    assert as_actor.exit_code == 0, as_actor.output
    assert json.loads(as_actor.stdout) == []
    as_model = world.run("audit", "--model", value, "--no-refresh")
    assert as_model.exit_code == 4 and "unknown model" in as_model.stderr
    as_type = world.run("audit", "--type", value, "--no-refresh")
    assert as_type.exit_code == 2 and "unknown event type" in as_type.stderr
    shown = world.run("show", value, "--no-refresh")
    assert shown.exit_code == 4 and "unknown model" in shown.stderr
    for result in (as_actor, as_model, as_type, shown):
        assert "Traceback" not in result.output
    assert len(world.json("audit", "--no-refresh")) == EVENTS  # nothing was dropped or changed


@pytest.mark.parametrize("option", ["--model", "--actor", "--type"])
def test_a_nul_in_a_filter_is_refused_as_bad_input(world, option):
    result = world.run("audit", option, "churn\x00", "--no-refresh")
    assert result.exit_code == 2
    assert "NUL" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "malformed time 'yesterday'"),
        (["--until", "2026-13-01"], "malformed time"),
        (["--since", "2026-03-04", "--until", "2026-03-01"], "--since is after --until"),
        (["--format", "xml"], "'xml' is not one of"),
        (["--json", "--csv"], "choose one output format"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_audit_bad_input_is_exit_2(world, args, message):
    result = world.run("audit", *args, "--no-refresh")
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_audit_limit_larger_than_any_log_is_every_row(world):
    rows = world.json("audit", "--limit", "99999999999999999999", "--no-refresh")
    assert len(rows) == EVENTS


@pytest.mark.parametrize("command", [["models"], ["show", "churn"], ["lineage", "churn@1"]], ids=lambda c: c[0])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of-position", "0:99999999999999999999"], "out of range"),
        (["--as-of", "0001-01-01T00:00:00+14:00"], "out of range"),
    ],
)
def test_cuts_out_of_range_are_exit_2(world, command, args, message):
    result = world.run(*command, *args, "--no-refresh")
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert message in line


# --- replay ------------------------------------------------------------------------


def test_replay_rebuilds_every_view_into_a_fresh_database_and_verifies(fresh):
    with open_log(fresh.log_url) as log:
        play(log)
    result = fresh.run("replay")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    where = make_url(fresh.db_url).render_as_string(hide_password=True)
    assert lines[0] == f"replayed {EVENTS} event(s) into {where}: 2 model(s), 3 version(s), 0 unreadable record(s) quarantined"
    assert "churn: production=v2" in result.stdout
    assert lines[-1] == f"verify: 2 stream(s), {EVENTS} event(s) in the raw log: intact"
    versions = fresh.json("show", "churn", "--no-refresh")["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "approved"), (2, "deployed")]

    again = fresh.run("replay")
    assert again.exit_code == 2
    assert "already holds views" in again.stderr and "--force" in again.stderr

    summary = fresh.json("replay", "--force", "--as-of", "2026-03-03")
    assert (summary["events"], summary["models"], summary["versions"]) == (9, 2, 2)
    assert summary["deployed"] == {"churn": {"production": 1}}
    assert summary["verified"]["ok"] is True
    frozen = fresh.run("models", "--json")  # a cut is never brought forward by a query
    assert frozen.exit_code == 0, frozen.output
    assert {m["model"]: m["deployed"] for m in json.loads(frozen.stdout)} == {"churn": {"production": 1}, "fraud": {}}
    assert "cut as of 2026-03-03" in frozen.stderr


def test_replay_as_of_before_the_first_event_stays_empty(fresh):
    """An auditor's "what was there on 1 January?" — nothing — is not quietly brought
    up to the present by the next query."""
    with open_log(fresh.log_url) as log:
        play(log)
    summary = fresh.json("replay", "--as-of", "2026-01-01")
    assert (summary["events"], summary["models"]) == (0, 0)
    frozen = fresh.run("models", "--json")
    assert frozen.exit_code == 0, frozen.output
    assert json.loads(frozen.stdout) == []
    assert "cut as of 2026-01-01" in frozen.stderr
    assert fresh.json("models", "--no-refresh") == []
    assert fresh.run("show", "churn").exit_code == 4
    again = fresh.run("replay")
    assert again.exit_code == 2 and "already holds views" in again.stderr


def test_replay_as_of_a_position_stays_put_like_a_cut_at_an_instant(fresh):
    """An auditor's cut at a log position is not brought forward by the next query,
    nor by `ledger project`; `ledger project --rebuild` replaces it."""
    with open_log(fresh.log_url) as log:
        accepted = play(log)
    fresh.accepted = accepted
    cut = fresh.position("churn v1 deployed")
    summary = fresh.json("replay", "--as-of-position", cut)
    assert summary["deployed"] == {"churn": {"production": 1}}
    with open_log(fresh.log_url) as log:  # the log moves on after the cut
        Appender(log).append([samples.deployed("churn", 2, environment="staging")])
    for command in (["models", "--json"], ["show", "churn", "--json"]):
        frozen = fresh.run(*command)
        assert frozen.exit_code == 0, frozen.output
        assert f"cut as of position {cut}; not refreshed" in frozen.stderr
    assert {m["model"]: m["deployed"] for m in fresh.json("models")} == {"churn": {"production": 1}}
    refused = fresh.run("project")
    assert refused.exit_code == 2
    assert f"built as of position {cut}" in refused.stderr and "--rebuild" in refused.stderr
    assert {m["model"]: m["deployed"] for m in fresh.json("models", "--no-refresh")} == {"churn": {"production": 1}}
    assert fresh.run("project", "--rebuild").exit_code == 0
    now = {m["model"]: m["deployed"] for m in fresh.json("models")}
    assert now == {"churn": {"production": 2, "staging": 2}, "fraud": {}}


def test_replay_into_an_explicit_database_leaves_the_default_alone(tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(log_url) as log:
        play(log)
    audit_db = f"sqlite:///{tmp_path / 'audit.db'}"
    result = CliRunner().invoke(main, ["--log", log_url, "--db", f"sqlite:///{tmp_path / 'views.db'}", "replay", "--db", audit_db, "--no-verify"])
    assert result.exit_code == 0, result.output
    assert "verify: skipped (--no-verify)" in result.stdout
    assert not (tmp_path / "views.db").exists()
    shown = CliRunner().invoke(main, ["--log", log_url, "--db", audit_db, "models", "--no-refresh", "--json"])
    assert [m["model"] for m in json.loads(shown.stdout)] == ["churn", "fraud"]


def flip_last_byte(path, event_id) -> None:
    """Alter one stored event of the embedded log in place (its last byte), as a
    tamperer with the file would."""
    conn = sqlite3.connect(path)
    with conn:
        data = conn.execute("SELECT data FROM events WHERE event_id = ?", (str(event_id),)).fetchone()[0]
        conn.execute("UPDATE events SET data = ? WHERE event_id = ?", (data[:-1] + bytes([data[-1] ^ 1]), str(event_id)))
    conn.close()


def test_replay_of_a_tampered_log_builds_the_views_and_exits_1(tmp_path):
    path = tmp_path / "log.db"
    with open_log(f"sqlite:///{path}") as log:
        accepted = play(log)
    target = accepted["churn v1 approved"]
    flip_last_byte(path, target.event.event_id)
    result = CliRunner().invoke(main, ["--log", f"sqlite:///{path}", "replay", "--db", f"sqlite:///{tmp_path / 'audit.db'}"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(f"replayed {EVENTS} event(s) into ")
    assert f"FAIL altered: churn#4 at 0:4 (event {target.event.event_id})" in result.stdout
    assert result.stdout.splitlines()[-1] == f"verify: 2 stream(s), {EVENTS} event(s) in the raw log: 1 problem(s)"
    trail = CliRunner().invoke(
        main, ["--db", f"sqlite:///{tmp_path / 'audit.db'}", "audit", "--actor", "bob", "--json", "--no-refresh"]
    )
    assert [(r["sequence"], r["chain"]) for r in json.loads(trail.stdout)] == [(4, "broken")]


def test_replay_verifying_in_a_second_process_reports_what_verifying_afterwards_does(tmp_path, monkeypatch):
    """A large embedded log is verified in another process while the views are built:
    same views, same problems named, same exit code as verifying afterwards."""
    path = tmp_path / "log.db"
    with open_log(f"sqlite:///{path}") as log:
        accepted = play(log)
    target = accepted["fraud v1 trained"]
    flip_last_byte(path, target.event.event_id)

    def replay(name: str, *extra: str):
        return CliRunner().invoke(main, ["--log", f"sqlite:///{path}", "replay", "--db", f"sqlite:///{tmp_path / name}", *extra])

    after = replay("after.db")
    monkeypatch.setattr(query_cli, "VERIFY_BESIDE_FROM", 0)
    started = []
    real = query_cli._VerifyBeside
    monkeypatch.setattr(query_cli, "_VerifyBeside", lambda url: started.append(url) or real(url))
    beside = replay("beside.db")
    assert started == [f"sqlite:///{path}"]
    assert beside.exit_code == after.exit_code == 1, beside.output
    assert beside.stdout == after.stdout.replace("after.db", "beside.db")
    assert "FAIL altered: fraud#2 at " in beside.stdout
    assert json.loads(replay("json.db", "--json").stdout)["verified"] == json.loads(
        replay("json2.db", "--json").stdout
    )["verified"]


def test_replay_draws_a_progress_bar_only_for_a_terminal(tmp_path, monkeypatch):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(log_url) as log:
        play(log)
    quiet = CliRunner().invoke(main, ["--log", log_url, "replay", "--db", f"sqlite:///{tmp_path / 'a.db'}"])
    assert quiet.exit_code == 0 and "replaying the log" not in quiet.stderr
    monkeypatch.setattr(query_cli, "_interactive", lambda: True)
    shown = CliRunner().invoke(main, ["--log", log_url, "replay", "--db", f"sqlite:///{tmp_path / 'b.db'}"])
    assert shown.exit_code == 0, shown.output
    assert "replaying the log" in shown.stderr
    assert shown.stdout == quiet.stdout.replace("a.db", "b.db")


# --- databases that are not there --------------------------------------------------

UNREACHABLE = [
    "postgresql+psycopg://nobody@127.0.0.1:1/x",
    "sqlite:////dev/null/cannot/views.db",
]
COMMANDS = [["models"], ["show", "churn"], ["lineage", "churn@1"], ["audit"], ["replay"]]


@pytest.mark.parametrize("db_url", UNREACHABLE)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_unreachable_database_is_exit_3_with_one_clear_line(tmp_path, db_url, command):
    result = CliRunner().invoke(main, ["--log", f"sqlite:///{tmp_path / 'log.db'}", "--db", db_url, *command])
    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot ")
    assert "Traceback" not in result.output


def test_a_database_error_while_querying_is_one_line(tmp_path):
    """A views database damaged behind the ledger's back: exit 3 and one line, not
    the SQL statement and its parameters."""
    log_url, db_url = f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'views.db'}"
    with open_log(log_url) as log:
        play(log)
    assert CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "project"]).exit_code == 0
    with sqlite3.connect(tmp_path / "views.db") as conn:
        conn.execute("DROP TABLE lin_edges")
    result = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "lineage", "churn@1", "--no-refresh"])
    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: projection database error while querying the views")
    assert "no such table: lin_edges" in line


def test_no_views_without_refresh_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path / 'none.db'}", "models", "--no-refresh"])
    assert result.exit_code == 3
    assert "holds no views yet: run `ledger project`" in result.stderr


# --- help --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["models", "show", "lineage", "audit", "replay"])
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    assert f"ledger {command}" in result.output


@pytest.mark.parametrize("db_url", ["postgresql+psycopg://nobody@127.0.0.1:1/x", "postgresql://nobody@127.0.0.1:1/x"])
@pytest.mark.parametrize("command", [*COMMANDS, ["project"]], ids=lambda c: c[0])
def test_a_missing_database_driver_is_exit_3_with_one_clear_line(tmp_path, monkeypatch, db_url, command):
    # As after a plain `pip install .`, without the [postgres] extra: no psycopg
    # (and psycopg2, which a bare postgresql:// asks for, is never installed).
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    result = CliRunner().invoke(main, ["--log", f"sqlite:///{tmp_path / 'log.db'}", "--db", db_url, *command])
    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: no database driver for ")
    assert "pip install 'psycopg[binary]'" in line
