"""The operators' and auditors' commands: ``models``, ``show``, ``pending``,
``lineage``, ``audit`` and ``replay``.

Thin: each command parses its input (:mod:`ledger.parsing`), asks
:mod:`projections.queries` (or the runner)
and renders the answer — a table or text for people, JSON or CSV for scripts.

The query commands read the projection database (``--db``). Before answering they
catch the views up with the log, so an event emitted a moment ago is in the answer;
``--no-refresh`` answers from the views as they are (no log needed). A database
built as of a past instant or log position is a frozen cut and is never brought
forward.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import click

from ledger import parsing
from ledger.cli.base import (
    EXIT_REJECTED,
    MODEL,
    TEXT,
    cut_options,
    open_ledger,
    open_views_db,
    parse_cut,
    refresh_option,
    settings,
    views_db,
)
from ledger.cli.output import chosen_format, escaped, output_options, render
from ledger.errors import BackendError, InputError, NotFound
from ledger.jsonio import dumps


# --- shared pieces ---------------------------------------------------------------------


def _trusted(ctx: click.Context, rows: list[dict], *, key: str) -> list[dict]:
    """``rows`` marked ``verified`` (ok, FAILED, unchecked) by their model's stream in
    the raw log; a warning line on stderr for each model that fails."""
    from projections import trust

    problems = settings(ctx).get("stream_problems")
    for line in trust.warnings(problems, (r.get(key) for r in rows)):
        click.echo(line, err=True)
    return trust.mark(rows, problems, key=key)


def _when(value) -> str:
    """A stored time for people: ``2026-03-03T10:00:00Z`` (microseconds only when there are some)."""
    if value is None:
        return ""
    text = str(value)
    return text.replace(".000000Z", "Z")


def _number(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _metrics(metrics: dict) -> str:
    return " ".join(f"{k}={_number(metrics[k])}" for k in sorted(metrics))


def _deployed(deployed: dict) -> str:
    return " ".join(f"{env}=v{version}" for env, version in sorted(deployed.items()))


def _field_text(report: dict) -> str:
    """A feedback report in a few words: its metrics, and DEGRADED with the metric
    that crossed its threshold."""
    text = _metrics({k: round(v, 4) for k, v in report["metrics"].items()})
    for alert in report["alerts"]:
        sign = "<" if alert["bound"] == "minimum" else ">"
        text += f" DEGRADED {alert['metric']} {_number(round(alert['value'], 4))} {sign} {_number(alert['threshold'])}"
    return text


def _field_of_deployed(deployed: dict, latest: dict, model: str) -> dict[str, dict]:
    """Environment → the latest feedback report of the version deployed there."""
    found = {}
    for env, version in sorted(deployed.items()):
        report = latest.get((model, version, env))
        if report is not None:
            found[env] = report
    return found


# --- models ----------------------------------------------------------------------------

MODEL_COLUMNS = ("model", "status", "versions", "latest_version", "deployed", "field", "created_at", "created_by", "verified")


@click.command()
@cut_options
@refresh_option
@click.option("--environment", metavar="ENV", default=None, help="Only models with a version deployed in ENV.")
@output_options
@click.pass_context
def models(ctx, as_of_time, as_of_position, no_refresh, environment, fmt, as_json, as_csv) -> None:
    """List every model: its status, how many versions, the latest one, and which
    version is deployed in each environment.

    The views are first caught up with the log (unless --no-refresh).

    \b
    Example:
      ledger models
      ledger models --as-of 2026-03-03T12:00:00Z --json
    """
    from projections import queries

    out = chosen_format(fmt, as_json, as_csv)
    environment = parsing.parse_environment(environment) if environment is not None else None
    cut = parse_cut(as_of_time, as_of_position)
    engine = views_db(ctx, refresh=not no_refresh)
    rows = queries.list_models(engine, as_of=cut, environment=environment)
    rows = _trusted(ctx, rows, key="model")
    latest = queries.latest_field_performance(engine, as_of=cut)
    for r in rows:
        r["field"] = _field_of_deployed(r["deployed"], latest, r["model"])
    if out != "json":
        rows = [
            {
                **r,
                "deployed": _deployed(r["deployed"]),
                "field": "; ".join(f"{env}: {_field_text(report)}" for env, report in r["field"].items()),
                "created_at": _when(r["created_at"]),
            }
            for r in rows
        ]
    click.echo(render(rows, MODEL_COLUMNS, out))


# --- pending ---------------------------------------------------------------------------

PENDING_COLUMNS = ("model", "version", "status", "evaluations", "last_evaluation_passed", "trained_by", "verified")


@click.command("pending")
@click.option("--model", type=MODEL, default=None, help="Only this model's versions.")
@refresh_option
@output_options
@click.pass_context
def pending(ctx, model, no_refresh, fmt, as_json, as_csv) -> None:
    """Versions waiting for a decision: evaluated, and neither approved nor
    rejected since their latest evaluation (an evaluation recorded after a
    decision makes it stale). Exit 4 for an unknown --model.

    \b
    Example:
      ledger pending
      ledger pending --model churn --json
    """
    from projections import queries

    out = chosen_format(fmt, as_json, as_csv)
    rows = queries.pending(views_db(ctx, refresh=not no_refresh), model=model)
    click.echo(render(_trusted(ctx, rows, key="model"), PENDING_COLUMNS, out))


# --- show ------------------------------------------------------------------------------

VERSION_COLUMNS = ("version", "status", "trained_by", "approved_by", "deployed_to", "metrics", "field", "trained_at", "parent_version")


@click.command()
@click.argument("target", metavar="MODEL[@VERSION]")
@cut_options
@refresh_option
@click.option("--environment", metavar="ENV", default=None, help="Only the versions deployed in ENV.")
@output_options
@click.pass_context
def show(ctx, target, as_of_time, as_of_position, no_refresh, environment, fmt, as_json, as_csv) -> None:
    """Show a model's versions and their states, or one version in full: the data
    it was trained on, code, hyper-parameters, artifact, evaluations and metrics,
    approvals and rejections, deployments and drift alerts.

    The views are first caught up with the log (unless --no-refresh). Exit 4 for
    an unknown model or version.

    \b
    Example:
      ledger show churn
      ledger show churn@2
      ledger show churn@2 --as-of 2026-03-04 --json
    """
    from projections import queries

    model, version = parsing.parse_target(target)
    environment = parsing.parse_environment(environment) if environment is not None else None
    out = chosen_format(fmt, as_json, as_csv)
    if version is not None and out == "csv":
        raise click.UsageError("one version is not a table: use the text view or --json")
    cut = parse_cut(as_of_time, as_of_position)
    engine = views_db(ctx, refresh=not no_refresh)
    verified = _trusted(ctx, [{"model": model}], key="model")[0]["verified"]
    if version is not None:
        detail = queries.version_document(engine, model, version, verified=verified, as_of=cut)
        if out == "json":
            click.echo(dumps(detail))
        else:
            click.echo(_version_text(escaped(detail), cut))
        return
    versions = queries.model_versions(engine, model, as_of=cut, environment=environment)
    metrics = queries.latest_metrics(engine, model, as_of=cut)
    summary = {**next(m for m in queries.list_models(engine, as_of=cut) if m["model"] == model), "verified": verified}
    latest = queries.latest_field_performance(engine, model, as_of=cut)
    for v in versions:
        v["metrics"] = metrics.get(v["version"], {})
        v["field"] = {env: report for (_, number, env), report in sorted(latest.items()) if number == v["version"]}
    if out == "json":
        click.echo(dumps({"model": summary, "versions": versions}))
        return
    rows = [
        {
            **v,
            "deployed_to": " ".join(v["deployed_in"]),
            "metrics": _metrics(v["metrics"]),
            "field": "; ".join(f"{env}: {_field_text(report)}" for env, report in v["field"].items()),
            "trained_at": _when(v["trained_at"]),
        }
        for v in versions
    ]
    if out == "table":
        deployed = _deployed(summary["deployed"]) or "nowhere"
        when = f" ({cut.describe()})" if cut is not None else ""
        click.echo(
            f"{model}: {summary['status']}, {summary['versions']} version(s), created {_when(summary['created_at'])} "
            f"by {summary['created_by']}; deployed: {deployed}{when}"
        )
    click.echo(render(rows, VERSION_COLUMNS, out))


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", title, *(f"  {line}" for line in lines or ["(none)"])]


def _aligned(pairs: list[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{k.ljust(width)}  {v}" for k, v in pairs]


def _version_text(d: dict, cut) -> str:
    name = f"{d['model']}@{d['version']}"
    when = f"  ({cut.describe()})" if cut is not None else ""
    lines = [f"{name}: {d['status']} since {_when(d['since'])}{when}"]
    facts = [
        (
            "trained",
            f"{_when(d['trained_at'])} by {d['trained_by']}"
            + (f" (recorded by {d['trained_recorded_by']})" if d.get("trained_recorded_by") else "")
            + f" (event {d['event_id']})",
        ),
        ("code", d["code_ref"]),
        ("artifact", f"{d['artifact_uri']} {d['artifact_hash']}"),
        ("parent", f"v{d['parent_version']}" if d["parent_version"] is not None else "none (first of its line)"),
        (
            "trigger",
            d["trigger"]
            + (
                f" ({'degradation' if d['trigger'] == 'degradation' else 'drift'} alert {d['trigger_alert_id']})"
                if d["trigger_alert_id"]
                else ""
            ),
        ),
    ]
    lines += [f"  {line}" for line in _aligned(facts)]
    lines += _section(
        "Data",
        [
            f"{s['snapshot_id']}: {s['dataset'] or '?'} {s['content_hash'] or ''}, {_number(s['row_count']) if s['row_count'] is not None else '?'} rows"
            + (f", recorded {_when(s['recorded_at'])} by {s['recorded_by']}" if s["recorded_at"] else "")
            for s in d["snapshots"]
        ],
    )
    lines += _section("Hyper-parameters", _aligned(sorted(d["hyperparameters"].items())))
    evaluations = []
    for e in d["evaluations"]:
        verdict = "passed" if e["passed"] else "FAILED"
        metrics = " ".join(
            f"{k}={_number(v)}" + (f" (min {_number(e['thresholds'][k])})" if k in e["thresholds"] else "")
            for k, v in sorted(e["metrics"].items())
        )
        recorder = f" (recorded by {e['recorded_by']})" if e.get("recorded_by") else ""
        evaluations.append(f"{_when(e['evaluated_at'])} by {e['evaluated_by']}{recorder} on {e['evaluation_snapshot_id']}: {verdict}  {metrics}")
    lines += _section("Evaluations", evaluations)
    lines += _section(
        "Approvals",
        [
            f"{_when(r['at'])} {r['decision']} by {r['by']}"
            + (f" (recorded by {r['recorded_by']})" if r.get("recorded_by") else "")
            + (f": {r['reason']}" if r["reason"] else "")
            for r in d["reviews"]
        ],
    )
    deployments = []
    for x in d["deployments"]:
        text = f"{x['environment']}: since {_when(x['since'])} by {x['deployed_by']}"
        if x.get("recorded_by"):
            text += f" (recorded by {x['recorded_by']})"
        if x["replaced_version"] is not None:
            text += f", replacing v{x['replaced_version']}"
        if x["ended_at"]:
            text += f"; until {_when(x['ended_at'])} by {x['ended_by']}" + (f" ({x['end_reason']})" if x["end_reason"] else "")
        deployments.append(text)
    lines += _section("Deployments", deployments)
    lines += _section(
        "Drift alerts",
        [
            f"{_when(a['at'])} in {a['environment']}: {a['metric']}"
            + (f" on {a['feature']}" if a["feature"] else "")
            + f" = {_number(a['value'])} (threshold {_number(a['threshold'])}, reference {a['reference_snapshot_id']}), "
            f"by {a['detected_by']} (alert {a['event_id']})"
            for a in d["drift_alerts"]
        ],
    )
    field = []
    for r in d.get("field_performance", []):
        offline = {k: v for k, v in r["offline_metrics"].items() if k in r["metrics"]}
        text = (
            f"{_when(r['recorded_at'])} in {r['environment']} by {r['reported_by']}, predictions "
            f"{_when(r['window_start'])} to {_when(r['window_end'])}: {r['predictions']} labelled "
            f"({r['unlabelled']} unlabelled), {r['alarms']} alarms, {r['confirmed']} confirmed; field {_field_text(r)}"
        )
        if offline:
            text += f"; offline {_metrics({k: round(v, 4) for k, v in offline.items()})}"
        field.append(text + f" (feedback {r['event_id']})")
    lines += _section("Field performance", field)
    lines += _section(
        "History",
        [f"{_when(h['from'])}  {h['status']:<10} {h['change']:<16} by {h['by']}" for h in d["history"]],
    )
    return "\n".join(lines)


# --- lineage ---------------------------------------------------------------------------

LINEAGE_FORMATS = ("tree", "json", "dot", "mermaid")
_ACTOR_KEYS = ("by", "trained_by", "evaluated_by", "detected_by", "recorded_by", "reported_by")


def _actor(node: dict) -> str | None:
    attrs = node.get("attrs") or {}
    return next((attrs[k] for k in _ACTOR_KEYS if attrs.get(k)), None)


def _node_text(node: dict) -> str:
    kind = node.get("kind") or "unknown"
    parts = [f"{node['label']} ({kind})"]
    actor = _actor(node)
    if actor:
        parts.append(actor)
    if node.get("recorded_at"):
        parts.append(_when(node["recorded_at"]))
    return " · ".join(parts)


def _children(result: dict) -> dict[str, list[tuple[str, str]]]:
    """Per node, the (edge kind, node) pairs one step further in the walk's direction."""
    up = result["direction"] == "up"
    order = {n["node_id"]: (n["depth"], n["label"], n["node_id"]) for n in result["nodes"]}
    children: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edge in result["edges"]:
        near, far = (edge["dst"], edge["src"]) if up else (edge["src"], edge["dst"])
        children[near].append((edge["kind"], far))
    for kids in children.values():
        kids.sort(key=lambda kid: (order.get(kid[1], (0, "", kid[1])), kid[0]))
    return children


def lineage_tree(result: dict) -> str:
    """The walk as an indented tree. A node reached again is printed once more
    with "(see above)" and not expanded twice."""
    nodes = {n["node_id"]: n for n in result["nodes"]}
    children = _children(result)
    arrow = "←" if result["direction"] == "up" else "→"
    root = result["root"]
    lines = [_node_text(nodes[root])]
    expanded = {root}
    # An explicit stack rather than recursion: histories can be long.
    stack = [(root, "", iter(children.get(root, [])), len(children.get(root, [])), 0)]
    while stack:
        node_id, prefix, kids, total, done = stack.pop()
        kid = next(kids, None)
        if kid is None:
            continue
        stack.append((node_id, prefix, kids, total, done + 1))
        kind, child = kid
        last = done + 1 == total
        again = child in expanded and children.get(child)
        text = f"{kind} {arrow} {_node_text(nodes[child])}" + (" (see above)" if again else "")
        lines.append(prefix + ("└── " if last else "├── ") + text)
        if child not in expanded:
            expanded.add(child)
            grandkids = children.get(child, [])
            stack.append((child, prefix + ("    " if last else "│   "), iter(grandkids), len(grandkids), 0))
    return "\n".join(lines)


_DOT_SHAPES = {
    "dataset": "cylinder",
    "snapshot": "folder",
    "training_run": "ellipse",
    "model_version": "box3d",
    "evaluation": "note",
    "approval": "hexagon",
    "deployment": "component",
    "drift_alert": "octagon",
}


def _dot_string(text: str) -> str:
    """A DOT quoted string: backslashes and quotes escaped, newlines as \\n."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{body}"'


def lineage_dot(result: dict) -> str:
    """The walk as a Graphviz digraph; edges point downstream (data → model → deployment)."""
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for node in result["nodes"]:
        label = f"{node['label']}\n{node.get('kind') or 'unknown'}"
        attrs = [f"label={_dot_string(label)}", f"shape={_DOT_SHAPES.get(node.get('kind'), 'box')}"]
        if node["node_id"] == result["root"]:
            attrs.append("penwidth=2")
        lines.append(f"  {_dot_string(node['node_id'])} [{', '.join(attrs)}];")
    for edge in result["edges"]:
        lines.append(f"  {_dot_string(edge['src'])} -> {_dot_string(edge['dst'])} [label={_dot_string(edge['kind'])}];")
    lines.append("}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    """Mermaid label text: characters its parser reads as syntax become entity codes."""
    out = []
    for ch in text.replace("\r", ""):
        if ch in '"#<>&|[](){}`\\':
            out.append(f"#{ord(ch)};")
        elif ch == "\n":
            out.append("<br/>")
        else:
            out.append(ch)
    return "".join(out)


def lineage_mermaid(result: dict) -> str:
    """The walk as a Mermaid flowchart; node ids are n0, n1… (labels carry the names)."""
    ids = {n["node_id"]: f"n{i}" for i, n in enumerate(result["nodes"])}
    lines = ["flowchart LR"]
    for node in result["nodes"]:
        label = _mermaid_text(f"{node['label']}\n{node.get('kind') or 'unknown'}")
        lines.append(f'  {ids[node["node_id"]]}["{label}"]')
    for edge in result["edges"]:
        lines.append(f'  {ids[edge["src"]]} -->|"{_mermaid_text(edge["kind"])}"| {ids[edge["dst"]]}')
    lines.append(f"  style {ids[result['root']]} stroke-width:3px")
    return "\n".join(lines)


@click.command()
@click.argument("node", metavar="MODEL@VERSION|NODE")
@click.option("--upstream", "direction", flag_value="up", default=True, help="What it came from: data, training, parents (default).")
@click.option("--downstream", "direction", flag_value="down", help="What came of it: evaluations, approvals, deployments, alerts, retrainings.")
@click.option("--depth", type=click.IntRange(min=0), default=None, metavar="N", help="Follow at most N edges (default: all).")
@cut_options
@refresh_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(LINEAGE_FORMATS, case_sensitive=False),
    default=None,
    help="tree (default, for people), json (nodes and edges), dot (Graphviz) or mermaid.",
)
@click.option("--json", "as_json", is_flag=True, help="Shorthand for --format json.")
@click.pass_context
def lineage(ctx, node, direction, depth, as_of_time, as_of_position, no_refresh, fmt, as_json) -> None:
    """Walk the lineage graph from a model version (or any node id, such as
    snapshot:churn/s1 or dataset:sensors): upstream to the data, code, training
    and drift alerts it came from; downstream to what came of it.

    The views are first caught up with the log (unless --no-refresh). Exit 4 when
    the node is unknown (at the cut).

    \b
    Example:
      ledger lineage churn@2
      ledger lineage churn@1 --downstream --depth 3
      ledger lineage churn@2 --as-of 2026-03-04 --format dot | dot -Tsvg > churn.svg
      ledger lineage churn@2 --format mermaid
    """
    from projections import queries

    if as_json and fmt and fmt.lower() != "json":
        raise click.UsageError("choose one output format")
    out = "json" if as_json else (fmt or "tree").lower()
    if "\x00" in node:
        raise InputError("a lineage node must not contain a NUL character")
    node_id = queries.resolve_node(node)
    cut = parse_cut(as_of_time, as_of_position)
    engine = views_db(ctx, refresh=not no_refresh)
    try:
        result = queries.lineage(engine, node_id, direction=direction, depth=depth, as_of=cut)
    except NotFound as exc:
        raise NotFound(f"{exc} (asked for {node!r})") from exc
    if out == "json":
        click.echo(dumps(result))
    elif out == "dot":
        click.echo(lineage_dot(result))
    elif out == "mermaid":
        click.echo(lineage_mermaid(result))
    else:
        click.echo(lineage_tree(escaped(result)))


# --- audit -----------------------------------------------------------------------------

AUDIT_COLUMNS = ("recorded_at", "position", "model", "version", "sequence", "event_type", "actor", "recorded_by", "chain", "summary")


def _event_type(text: str) -> str:
    from ledger.events import BY_CLI_NAME, BY_TYPE
    from projections.audit import UNREADABLE

    if text in BY_TYPE or text == UNREADABLE:
        return text
    if text.lower() in BY_CLI_NAME:
        return BY_CLI_NAME[text.lower()].event_type
    known = ", ".join([*BY_CLI_NAME, *BY_TYPE, UNREADABLE])
    raise InputError(f"unknown event type {text!r} for --type; use one of: {known}")


@click.command()
@click.option("--model", type=MODEL, default=None, help="Only this model's records (matched exactly).")
@click.option("--actor", type=TEXT, default=None, help="Only what this actor did, or recorded through the service on another's behalf (names compared in canonical form: case and compatibility forms ignored).")
@click.option(
    "--type",
    "event_type",
    type=TEXT,
    default=None,
    help="Only this kind of event: a CLI name (deploy) or an event type (ModelDeployed); "
    "'unreadable' for records that could not be read.",
)
@click.option("--since", metavar="TIME", default=None, help="Only records recorded at or after TIME (ISO-8601; a bare date is midnight UTC at the start of that day).")
@click.option("--until", metavar="TIME", default=None, help="Only records recorded at or before TIME (ISO-8601; a bare date is midnight UTC at the start of that day).")
@click.option("--version", "version", type=click.IntRange(min=1, max=parsing.MAX_VERSION), default=None, help="Only records of this version.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many rows (oldest first, or newest with --newest-first).")
@click.option("--newest-first", is_flag=True, help="Newest records first (with --limit: the latest ones).")
@refresh_option
@output_options
@click.pass_context
def audit(ctx, model, actor, event_type, since, until, version, limit, newest_first, no_refresh, fmt, as_json, as_csv) -> None:
    """The audit trail: every record of the log — who did what, when, to which
    model — with its position and whether it links to its model's hash chain.

    Filters are matched exactly (no wildcards). The views are first caught up
    with the log (unless --no-refresh). Exit 4 for an unknown --model.

    \b
    Example:
      ledger audit --model churn --since 2026-03-01 --until 2026-03-31
      ledger audit --actor carol --type approve --format csv > approvals.csv
    """
    from projections import queries

    out = chosen_format(fmt, as_json, as_csv)
    wanted_type = _event_type(event_type) if event_type is not None else None
    start, end = parsing.parse_window(since, until)
    if limit is not None:
        # The database's integers stop at 2**63 - 1, far beyond any log: more is all.
        limit = min(limit, 2**63 - 1)
    engine = views_db(ctx, refresh=not no_refresh)
    rows = queries.audit(
        engine, model=model, actor=actor, event_type=wanted_type, since=start, until=end, limit=limit,
        version=version, newest_first=newest_first,
    )
    rows = _trusted(ctx, rows, key="model")
    if not rows and model is not None and model not in {m["model"] for m in queries.list_models(engine)}:
        raise NotFound(f"unknown model {model!r}")
    if out != "json":
        rows = [{**r, "recorded_at": _when(r["recorded_at"])} for r in rows]
    click.echo(render(rows, AUDIT_COLUMNS, out))


# --- replay ----------------------------------------------------------------------------


def _interactive() -> bool:
    """Whether a person watches stderr (the progress bar is only for them)."""
    return sys.stderr.isatty()


VERIFY_BESIDE_FROM = 50_000
"""Records from which ``replay`` verifies the embedded log in a second process while
the views are built: the two passes read and decode the whole log each, and on a
machine with two CPUs they take the time of the longer one instead of both. Below it
starting a Python process costs more than it saves."""


def _verify_into(url: str, answer) -> None:
    """In the verifying process: the embedded log's whole verification, sent back
    (or the one-line error that stopped it)."""
    from ledger.client import Ledger
    from ledger.errors import LedgerError

    try:
        with Ledger.open(url, must_exist=True) as ledger:
            answer.send((True, ledger.verify()))
    except LedgerError as exc:
        answer.send((False, exc))
    except KeyboardInterrupt:
        pass  # the parent, interrupted too, says so


class _VerifyBeside:
    """The embedded log's verification, run in another process while the views are
    built."""

    def __init__(self, url: str):
        import multiprocessing

        # spawn, not fork: a forked child would inherit this process's open SQLite
        # connections, which SQLite forbids using (or closing) across a fork.
        context = multiprocessing.get_context("spawn")
        self._answer, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_verify_into, args=(url, sender), daemon=True)
        self._process.start()
        sender.close()

    def result(self):
        try:
            ok, value = self._answer.recv()
        except EOFError:
            raise BackendError(f"the verifying process ended without an answer (exit {self._process.exitcode})") from None
        finally:
            self._process.join()
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _verify_beside(url: str, log) -> _VerifyBeside | None:
    """The log's verification started in another process, or None when it is better
    done here afterwards (a small log, a log other than an embedded file)."""
    from ledger.backends.sqlite import SqliteLog

    if not isinstance(log, SqliteLog) or sum(log.end_offsets().values()) < VERIFY_BESIDE_FROM:
        return None
    return _VerifyBeside(url)


@click.command()
@click.option(
    "--db",
    "replay_db",
    metavar="URL",
    default=None,
    help="The database to rebuild the views into (usually a fresh one; default: the group's --db / LEDGER_DB).",
)
@cut_options
@click.option("--force", is_flag=True, help="Replace the views the database already holds.")
@click.option("--no-verify", is_flag=True, help="Skip checking the raw log's hash chains after the replay.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def replay(ctx, replay_db, as_of_time, as_of_position, force, no_verify, as_json) -> None:
    """Rebuild every view (registry, lineage, audit, quarantine) from the raw log
    into a database of your own, then verify every hash chain of the raw log — an
    auditor's answer that trusts no one else's database.

    Refuses (exit 2) a database that already holds views, unless --force. With
    --as-of the views are those of that moment (the verification still covers the
    whole log); a later query never brings such a cut forward, whether it was
    cut at --as-of or at --as-of-position. Exit 1 when the verification finds a
    problem (the views are built all the same); exit 3 when the database cannot be
    reached.

    \b
    Example:
      ledger replay --db sqlite:///audit.db
      ledger replay --db sqlite:///march.db --as-of 2026-03-31
      ledger --db sqlite:///audit.db show churn@2 --no-refresh
    """
    from projections import db, queries
    from projections.runner import project

    cut = parse_cut(as_of_time, as_of_position)
    engine = open_views_db(ctx, replay_db)
    where = db.describe(engine)
    if queries.holds_views(engine) and not force:
        raise InputError(f"{where} already holds views: replay into a fresh database, or pass --force to replace them")
    ledger = open_ledger(ctx)
    log = ledger.log
    beside = None if no_verify else _verify_beside(settings(ctx)["log_url"], log)
    if beside is not None:
        ctx.call_on_close(beside.stop)  # a failed or interrupted replay leaves no process behind

    def run(on_batch=None):
        return project(log, engine, rebuild=True, as_of=cut, on_batch=on_batch)

    if _interactive():
        try:
            total = sum(log.end_offsets().values())
        except NotImplementedError:
            total = None
        started = time.monotonic()

        def rate(_item) -> str:
            done = bar.pos if bar is not None else 0
            elapsed = time.monotonic() - started
            return f"{done / elapsed:,.0f} records/s" if elapsed > 0 and done else ""

        bar = None
        with click.progressbar(
            length=total, label="replaying the log", file=sys.stderr, show_eta=True, item_show_func=rate
        ) as bar:
            reached: dict[int, int] = {}

            def advance(batch) -> None:
                before = sum(o + 1 for o in reached.values())
                for partition, offset in batch.positions.items():
                    reached[partition] = max(offset, reached.get(partition, -1))
                bar.update(sum(o + 1 for o in reached.values()) - before)

            report = run(advance)
            if total is not None:
                bar.update(max(0, total - bar.pos))
    else:
        report = run()
    listed = queries.list_models(engine)
    summary = {
        "log": settings(ctx)["log_url"],
        "database": where,
        "as_of": cut.describe() if cut is not None else None,
        "records": report.records,
        "events": report.records - report.unreadable,
        "quarantined": report.unreadable,
        "models": len(listed),
        "versions": sum(m["versions"] for m in listed),
        "deployed": {m["model"]: m["deployed"] for m in listed if m["deployed"]},
        "verified": None,
    }
    verification = None
    if not no_verify:
        if _interactive():
            click.echo("verifying the raw log's hash chains…", err=True)
        verification = beside.result() if beside is not None else ledger.verify()
        summary["verified"] = verification.as_dict()
    if as_json:
        click.echo(dumps(summary))
    else:
        when = f" {summary['as_of']}" if cut is not None else ""
        click.echo(
            f"replayed {summary['events']} event(s) into {where}{when}: {summary['models']} model(s), "
            f"{summary['versions']} version(s), {summary['quarantined']} unreadable record(s) quarantined"
        )
        for name, deployed in summary["deployed"].items():
            click.echo(f"  {name}: {_deployed(deployed)}")
        if verification is None:
            click.echo("verify: skipped (--no-verify)")
        else:
            for problem in verification.problems:
                click.echo(f"FAIL {problem}")
            click.echo(f"verify: {verification.summary(' in the raw log')}")
    if verification is not None and not verification.ok:
        ctx.exit(EXIT_REJECTED)


commands: list = [models, show, pending, lineage, audit, replay]
