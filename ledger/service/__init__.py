"""The ledger service: an HTTP front that is the one writer of the log
(``ledger serve``). See :mod:`ledger.service.app`."""
