"""Free text in an event on the log may hold a NUL character, which PostgreSQL cannot
store in text. The append path refuses NULs now, but an event written before it did
(or by another writer of the same bytes) is on the log for good: the projector must
neither stop on it nor skip it, on either database, and a rebuild must still equal
the fold."""

from __future__ import annotations

from ledger import samples
from ledger.append import Appender
from ledger.backends.sqlite import SqliteLog
from ledger.events import ModelApproved, ModelRetired
from projections import db, queries
from projections.runner import Runner, build, project

REPLACEMENT = "\ufffd"


def test_a_nul_in_free_text_is_projected_as_a_replacement_character(tmp_path, engine, new_db_url, monkeypatch):
    # Write as an older ledger did, without the NUL guard.
    monkeypatch.setattr("ledger.append._nul_field", lambda value, path="": None)
    monkeypatch.setattr("ledger.identity.check_name", lambda name, what="actor": name)  # as before issue 9 too
    log = SqliteLog(tmp_path / "log.db")
    appender = Appender(log)
    appender.append([samples.snapshot("pumps", "s1")])
    appender.append([samples.trained("pumps", 1, actor="al\x00ice"), samples.evaluated("pumps", 1)])
    appender.append([ModelApproved(model="pumps", version=1, actor="bob", reason="fine\x00print")])
    appender.append([ModelRetired(model="pumps", version=1, actor="b\x00ob", reason="end\x00of life")])

    report = project(log, engine)
    assert (report.records, report.unreadable) == (5, 0)
    rows = queries.audit(engine, model="pumps")
    assert [r["actor"] for r in rows][-1] == f"b{REPLACEMENT}ob"
    assert rows[3]["summary"] == f"approved v1: fine{REPLACEMENT}print"
    detail = queries.version_detail(engine, "pumps", 1)
    assert (detail["status"], detail["trained_by"]) == ("retired", f"al{REPLACEMENT}ice")

    # Incremental runs go on past it, and a rebuild gives the very same rows.
    appender.append([samples.snapshot("pumps", "s2")])
    assert Runner(engine).run(log).records == 1
    whole = build(log, new_db_url())
    try:
        assert db.dump(whole) == db.dump(engine)
    finally:
        whole.dispose()
        log.close()
