"""The clinical safety hazard log: an append-only, hash-chained, signed ledger with its head anchored outside
the file (see `phm.core.ledger`), at `$PHM_HOME/safety/hazard_log.jsonl`."""

from phm.core.ledger import GENESIS, Check, LedgerError, adopt, append, check, head_problems, read, verify

HazardLogError = LedgerError
__all__ = ["GENESIS", "Check", "HazardLogError", "adopt", "append", "check", "head_problems", "read", "verify"]
