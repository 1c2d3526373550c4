"""Projections: deterministic folds of the log into SQL views (SQLite or PostgreSQL).

* :mod:`projections.runner` — applies the log to the views, rows and positions in
  one transaction per batch; ``build`` folds a log (cut as of a moment) into fresh views;
* :mod:`projections.registry`, :mod:`projections.lineage`, :mod:`projections.audit`,
  :mod:`projections.quarantine` — the views;
* :mod:`projections.queries` — the questions asked of them, as of any moment;
* :mod:`projections.asof` — cuts of the log at an instant or a position;
* :mod:`projections.tables` and :mod:`projections.db` — the tables and the database.

Importing this package loads nothing else (the CLI imports it on every command).
"""
