"""The auditor's report: one self-contained HTML file.

:func:`gather` asks the views (:mod:`projections.queries`, :mod:`projections.metrics`)
everything the report shows and returns plain data; :func:`render_report` turns
that into HTML through a Jinja2 template with autoescaping on, so every value from
the ledger — model names, reasons, actors, hyper-parameters — is text, never markup
(``tests/integration/test_report.py`` records hostile strings and checks).

Self-contained means: no script at all, no external style sheet, font or image —
inline CSS and inline SVG only, and a Content-Security-Policy that forbids loading
anything, so even a value that slipped past the escaping could fetch nothing.
A print style sheet keeps it readable as PDF.

The lineage diagrams are laid out here, simply: layered left to right, one
column per longest path from the sources (data first, alerts last), nodes sorted
by kind inside a column. The lead-time charts are horizontal bars, one per measurement, with the
median and 90th percentile marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources

from sqlalchemy.engine import Engine

from ledger.errors import NotFound
from ledger.identity import same_person  # the four-eyes rule's own comparison
from ledger.identity import visible
from projections import lineage as _lineage
from projections import metrics as _metrics
from projections import queries
from projections.asof import AsOf

REPORT_VERSION = "1"

IN_USE, IN_DEVELOPMENT, RETIRED = "in use", "in development", "retired"


# --- the signed checkpoints ------------------------------------------------------------------


def _signature(sig) -> str:
    when = sig.cosigned_at
    if when is None:
        return sig.key
    try:
        at = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        at = f"time {when}"
    return f"{sig.key} (co-signed {at})"


def signed_checkpoints(log) -> list[dict]:
    """The latest signed checkpoint of every partition, for the report's "Signed
    checkpoints" section: origin, tree size, root hash, the key names on its
    signature lines (witnesses' co-signatures with their time), the note itself,
    and whether the log still extends it and every other checkpoint stored for
    the partition (:func:`ledger.checkpoints.check_stored`). Signatures are named,
    not checked: the report has no public key (``ledger verify --checkpoint``)."""
    from ledger.checkpoints import check_stored

    return [
        {
            "origin": check.latest.checkpoint.origin,
            "size": check.latest.checkpoint.size,
            "root_hash": check.latest.checkpoint.root.hex(),
            "signatures": [_signature(sig) for sig in check.latest.note.signatures],
            "note": str(check.latest),
            "records_now": check.size,
            "stored": check.stored,
            "verified": check.ok,
            "problem": check.problem,
        }
        for check in check_stored(log)
    ]


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    ok: bool
    """Every chain intact and the log extends every stored checkpoint."""
    summary: str
    problems: tuple[str, ...]
    streams: dict
    checkpoints: tuple[dict, ...]
    checked_at: str


def verify_log(log_url: str) -> Verification:
    """Re-read the raw log and check every stream (``ledger verify``) and the
    checkpoints stored beside it."""
    from ledger.client import Ledger

    with Ledger.open(log_url, must_exist=True) as ledger:
        report = ledger.verify()
        checkpoints = tuple(signed_checkpoints(ledger.log))
    data = report.as_dict()
    rewritten = tuple(f"signed checkpoint {c['origin']}@{c['size']}: {c['problem']}" for c in checkpoints if c["problem"])
    return Verification(
        ok=report.ok and not rewritten,
        summary=report.summary(),
        problems=tuple(str(p) for p in report.problems) + rewritten,
        streams=data["heads"],
        checkpoints=checkpoints,
        checked_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


# --- gathering ---------------------------------------------------------------------------------


def version_category(status: str) -> str:
    if status == "retired":
        return RETIRED
    if status == "deployed":
        return IN_USE
    return IN_DEVELOPMENT


def model_category(model: dict, versions: list[dict]) -> str:
    if model["status"] == "retired" or (versions and all(v["status"] == "retired" for v in versions)):
        return RETIRED
    if any(v["status"] == "deployed" for v in versions):
        return IN_USE
    return IN_DEVELOPMENT


def _maker_checker(detail: dict, reviews: list[dict]) -> dict:
    """Who held which role, and who held two. A role is held by the event's actor and,
    when a principal recorded it on the actor's behalf (event schema v4's
    ``recorded_by``), by that principal too: a runner that recorded alice's training
    and dave's deployment trained and deployed; one that recorded ci's evaluation
    evaluated."""

    def held(name: str | None, recorder: str | None) -> str | None:
        return None if name is None else f"{name} (recorded by {recorder})" if recorder else name

    def people(name: str | None, recorder: str | None) -> list[str]:
        return [p for p in (name, recorder) if p]

    approval = next(
        (r for r in reversed(reviews) if r.get("decision") == "approved" and r.get("by") == detail["approved_by"]), {}
    )
    trainer = people(detail["trained_by"], detail.get("trained_recorded_by"))
    approver = people(detail["approved_by"], approval.get("recorded_by"))
    evaluators = {held(e["evaluated_by"], e.get("recorded_by")): people(e["evaluated_by"], e.get("recorded_by")) for e in detail["evaluations"]}
    deployers = {held(d["deployed_by"], d.get("recorded_by")): people(d["deployed_by"], d.get("recorded_by")) for d in detail["deployments"]}
    roles = [("trainer", p) for p in trainer] + [("evaluator", p) for ps in evaluators.values() for p in ps]
    roles += [("approver", p) for p in approver]
    roles += [("rejecter", detail["rejected_by"])] if detail["rejected_by"] else []
    roles += [("deployer", p) for ps in deployers.values() for p in ps]
    clashes = sorted(
        {f"{r1} and {r2}: {n1}" for i, (r1, n1) in enumerate(roles) for r2, n2 in roles[i + 1:] if r1 != r2 and same_person(n1, n2)}
    )

    def shared(a: list[str], b: list[str]) -> bool:
        return any(same_person(x, y) for x in a for y in b)

    everyone_deploying = [p for ps in deployers.values() for p in ps]
    # The checks that matter: the one who approves and the one who deploys are not
    # the one who trained.
    return {
        "trainer": held(detail["trained_by"], detail.get("trained_recorded_by")),
        "evaluators": sorted(evaluators),
        "approver": held(detail["approved_by"], approval.get("recorded_by")),
        "rejecter": detail["rejected_by"],
        "deployers": sorted(deployers),
        "approver_is_trainer": shared(trainer, approver),
        "deployer_is_trainer": shared(trainer, everyone_deploying),
        "deployer_is_approver": shared(approver, everyone_deploying),
        "clashes": clashes,
    }


UPSTREAM_DEPTH = 9
"""How far upstream a version's diagram reaches: far enough for a retraining to show
its parent's whole generation (alert → deployment → approval → evaluation → version →
run → snapshot → dataset), near enough that the diagram of the 100th version is not
the whole history (``ledger lineage`` walks all of it)."""


def _lineage_graph(engine: Engine, model: str, version: int, as_of: AsOf | None) -> dict:
    """The version's neighbourhood: upstream to :data:`UPSTREAM_DEPTH` edges, and downstream what
    happened to this version (evaluations, reviews, deployments, alerts) and the
    versions retrained from it."""
    root = _lineage.version_node(model, version)
    up = queries.lineage(engine, root, direction="up", depth=UPSTREAM_DEPTH, as_of=as_of)
    down = queries.lineage(engine, root, direction="down", depth=5, as_of=as_of)
    nodes: dict[str, dict] = {}
    for n in up["nodes"]:
        nodes[n["node_id"]] = n
    for n in down["nodes"]:
        own = n["model"] == model and n["version"] == version
        child = n["kind"] in ("model_version", "training_run") and n["depth"] <= 2
        if n["node_id"] not in nodes and (own or child):
            nodes[n["node_id"]] = n
    edges = {
        (e["src"], e["dst"], e["kind"])
        for e in up["edges"] + down["edges"]
        if e["src"] in nodes and e["dst"] in nodes
    }
    return layout(list(nodes.values()), sorted(edges), root)


NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 160, 42, 34, 12, 10


def columns_by_longest_path(node_ids: list[str], edges: list[tuple[str, str, str]]) -> dict[str, int]:
    """Each node's column: the length of the longest edge path reaching it, so every
    edge points to the right (the first step of a layered, Sugiyama-style drawing).
    Bounded by the node count, so a forged cycle cannot loop."""
    column = dict.fromkeys(node_ids, 0)
    for _ in range(len(node_ids)):
        changed = False
        for src, dst, _kind in edges:
            if src in column and dst in column and column[dst] < column[src] + 1:
                column[dst] = column[src] + 1
                changed = True
        if not changed:
            break
    used = sorted(set(column.values()))
    compact = {c: i for i, c in enumerate(used)}
    return {n: compact[c] for n, c in column.items()}


def layout(nodes: list[dict], edges: list[tuple[str, str, str]], root: str) -> dict:
    """Positions for an SVG, laid out left → right: a column per longest path from
    the sources (data on the left, deployments and alerts on the right), rows sorted
    by kind then id; edges as cubic curves from the right side of one node to the
    left side of the next."""
    order = {kind: i for i, kind in enumerate(_lineage.KINDS)}
    by_id = {n["node_id"]: n for n in nodes}
    column_of = columns_by_longest_path(sorted(by_id), edges)
    columns: dict[int, list[dict]] = {}
    for node_id, column in column_of.items():
        columns.setdefault(column, []).append(by_id[node_id])
    placed: dict[str, dict] = {}
    tallest = 0
    sources: dict[str, list[str]] = {}
    for src, dst, _kind in edges:
        sources.setdefault(dst, []).append(src)
    row_of: dict[str, int] = {}

    def barycentre(node: dict) -> float:
        # The mean row of its sources already placed: fewer crossing edges.
        rows = [row_of[s] for s in sources.get(node["node_id"], ()) if s in row_of]
        return sum(rows) / len(rows) if rows else -1.0

    for column, members in sorted(columns.items()):
        members.sort(key=lambda n: (barycentre(n), order.get(n["kind"], 99), n["node_id"]))
        row_of.update({n["node_id"]: row for row, n in enumerate(members)})
        tallest = max(tallest, len(members))
        for row, n in enumerate(members):
            label = n["label"] or n["node_id"]
            placed[n["node_id"]] = {
                "id": n["node_id"],
                "kind": n["kind"] or "unknown",
                "label": label if len(label) <= 26 else label[:25] + "…",
                "full": f"{n['kind']}: {n['node_id']} — {label}",
                "x": PAD + column * (NODE_W + GAP_X),
                "y": PAD + row * (NODE_H + GAP_Y),
                "root": n["node_id"] == root,
            }
    lines = []
    for src, dst, kind in edges:
        a, b = placed.get(src), placed.get(dst)
        if a is None or b is None:
            continue
        x1, y1 = a["x"] + NODE_W, a["y"] + NODE_H / 2
        x2, y2 = b["x"], b["y"] + NODE_H / 2
        mid = (x1 + x2) / 2
        lines.append({"d": f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}", "kind": kind})
    width = PAD * 2 + max(len(columns), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(tallest, 1) * (NODE_H + GAP_Y) - GAP_Y
    return {"nodes": list(placed.values()), "edges": lines, "width": width, "height": height, "w": NODE_W, "h": NODE_H}


CHART_ROW, CHART_LABEL, CHART_BAR = 20, 200, 420


def chart(metric: str, measurements: list, summary: dict) -> dict:
    """A horizontal bar per measurement (longest last), with median and p90 lines."""
    done = sorted((m for m in measurements if m.seconds is not None), key=lambda m: (m.seconds, m.subject))
    longest = max((m.seconds for m in done), default=0.0) or 1.0
    bars = [
        {
            "label": m.subject if len(m.subject) <= 32 else m.subject[:31] + "…",
            "full": m.subject,
            "value": _metrics.human(m.seconds),
            "y": 8 + i * CHART_ROW,
            "width": max(1.0, CHART_BAR * max(m.seconds, 0.0) / longest),
        }
        for i, m in enumerate(done)
    ]
    marks = []
    for name, key in (("median", "median_seconds"), ("p90", "p90_seconds")):
        value = summary.get(key)
        if value is not None:
            marks.append({"name": name, "x": CHART_LABEL + CHART_BAR * max(value, 0.0) / longest, "value": _metrics.human(value)})
    return {
        "metric": metric,
        "description": _metrics.DESCRIPTIONS.get(metric, ""),
        "environment": summary.get("environment"),
        "bars": bars,
        "marks": marks,
        "open": summary.get("open"),
        "height": 8 + max(len(bars), 1) * CHART_ROW + 34,
        "width": CHART_LABEL + CHART_BAR + 90,
        "label_x": CHART_LABEL,
    }


def gather(
    engine: Engine,
    *,
    as_of: AsOf | None = None,
    models: list[str] | None = None,
    production: str = _metrics.PRODUCTION,
    verification: Verification | None = None,
    generated_at: str | None = None,
) -> dict:
    """Everything the report shows, as plain data (see the module docstring)."""
    known = queries.list_models(engine, as_of=as_of)
    if models:
        names = {m["model"] for m in known}
        missing = [m for m in models if m not in names]
        if missing:
            when = f" {as_of.describe()}" if as_of else ""
            raise NotFound(f"unknown model(s) {', '.join(repr(m) for m in missing)}{when}")
        known = [m for m in known if m["model"] in set(models)]
    facts = _metrics.load_facts(engine)
    answer = _metrics.compute(facts, as_of=as_of, models=[m["model"] for m in known], production=production)
    alerts_answered = {
        (m.model, m.version, m.environment, m.start): m for m in answer.measurements if m.metric == "drift_to_replacement"
    }

    inventory, sections = [], []
    for model in known:
        versions = queries.model_versions(engine, model["model"], as_of=as_of)
        category = model_category(model, versions)
        details = []
        for v in versions:
            detail = queries.version_detail(engine, model["model"], v["version"], as_of=as_of)
            links = queries.version_links(engine, model["model"], v["version"], as_of=as_of)
            details.append((v, detail, links))
        retrained_by_alert: dict[str, list[int]] = {}
        for _, detail, _ in details:
            if detail["trigger_alert_id"]:
                retrained_by_alert.setdefault(detail["trigger_alert_id"], []).append(detail["version"])
        timeline = queries.audit(engine, model=model["model"], as_of=as_of)
        version_sections = []
        for v, detail, links in details:
            inventory.append(
                {
                    "model": model["model"],
                    "version": v["version"],
                    "category": version_category(v["status"]),
                    "status": v["status"],
                    "deployed_in": v["deployed_in"],
                    "trained_by": v["trained_by"],
                    "approved_by": v["approved_by"],
                    "trained_at": v["trained_at"],
                }
            )
            alerts = []
            for alert in links["drift_alerts"]:
                answered = alerts_answered.get((model["model"], v["version"], alert["environment"], alert["at"]))
                alerts.append(
                    {
                        **alert,
                        "retrained_as": retrained_by_alert.get(alert["event_id"], []),
                        "replaced_at": answered.end if answered else None,
                        "replaced_after": _metrics.human(answered.seconds) if answered and answered.seconds is not None else None,
                        "open": answered is not None and answered.end is None,
                    }
                )
            evaluations = [
                {
                    **e,
                    "rows": [
                        {
                            "metric": name,
                            "value": value,
                            "threshold": e["thresholds"].get(name),
                            "meets": None if e["thresholds"].get(name) is None or value is None else value >= e["thresholds"][name],
                        }
                        for name, value in sorted(e["metrics"].items())
                    ],
                }
                for e in detail["evaluations"]
            ]
            version_sections.append(
                {
                    "version": v["version"],
                    "status": v["status"],
                    "category": version_category(v["status"]),
                    "detail": detail,
                    "snapshots": links["snapshots"],
                    "reviews": links["reviews"],
                    "maker_checker": _maker_checker(detail, links["reviews"]),
                    "evaluations": evaluations,
                    "alerts": alerts,
                    "timeline": [r for r in timeline if r["version"] == v["version"]],
                    "lineage": _lineage_graph(engine, model["model"], v["version"], as_of),
                }
            )
        sections.append(
            {
                "model": model["model"],
                "category": category,
                "status": model["status"],
                "created_at": model["created_at"],
                "created_by": model["created_by"],
                "deployed": model["deployed"],
                "model_timeline": [r for r in timeline if r["version"] is None],
                "versions": version_sections,
            }
        )
    counts = {c: sum(1 for s in sections if s["category"] == c) for c in (IN_USE, IN_DEVELOPMENT, RETIRED)}
    by_metric: dict[tuple[str, str | None], list] = {}
    for m in answer.measurements:
        by_metric.setdefault((m.metric, m.environment if m.metric == "deploy_interval" else None), []).append(m)
    charts = [
        chart(s["metric"], by_metric.get((s["metric"], s["environment"] if s["metric"] == "deploy_interval" else None), []), s)
        for s in answer.summary
    ]
    summary_rows = [
        {**s, "median": _metrics.human(s["median_seconds"]), "p90": _metrics.human(s["p90_seconds"])} for s in answer.summary
    ]
    return {
        "report_version": REPORT_VERSION,
        "generated_at": generated_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "as_of": as_of.describe() if as_of else "now (the whole log)",
        "models_filter": models or [],
        "production": production,
        "counts": counts,
        "inventory": inventory,
        "sections": sections,
        "metrics": summary_rows,
        "charts": charts,
        "verification": verification,
    }


def _shown(value):
    """A value as the report prints it: strings through :func:`ledger.identity.visible`
    (what :func:`ledger.cli.output.escaped` applies), anything else as it is."""
    return visible(value) if isinstance(value, str) else value


def _template():
    import jinja2

    text = resources.files("projections").joinpath("report.html.j2").read_text(encoding="utf-8")
    # ``finalize`` runs on every {{ value }} before autoescaping: the CLI's rule for
    # control, format and bidi characters (``\x1b``, ``\u202e``) on every stored
    # string, so no output expression can forget it and the report spells a hostile
    # value the way `ledger show` and `ledger audit` print it.
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_shown
    )
    env.filters["visible"] = _shown
    env.filters["when"] = lambda v: "" if v is None else str(v).replace(".000000Z", "Z")
    env.filters["num"] = lambda v: "" if v is None else (format(v, "g") if isinstance(v, float) else str(v))
    return env.from_string(text)


def render_report(data: dict) -> str:
    return _template().render(**data)
