"""Data quality: data contracts and datasets (:mod:`.datasets`), units
(:mod:`.units`), drift statistics (:mod:`.drift`) and the monitoring steps that
record snapshots and drift alerts in the ledger (:mod:`.monitoring`)."""
