"""Data quality. Pure: data contracts and the checks, statistics and hashing of a
dataset (:mod:`.contracts`), units (:mod:`.units`), drift statistics
(:mod:`.drift`). With I/O: reading CSV files and keeping checked data
(:mod:`.datasets`), and recording snapshots and drift alerts in the ledger
(:mod:`.monitoring`)."""
