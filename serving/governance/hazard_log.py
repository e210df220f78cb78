"""The clinical safety hazard log: an append-only, hash-chained ledger (see `phm.core.ledger`)."""

from phm.core.ledger import GENESIS, LedgerError, append, read, verify

HazardLogError = LedgerError
__all__ = ["GENESIS", "HazardLogError", "append", "read", "verify"]
