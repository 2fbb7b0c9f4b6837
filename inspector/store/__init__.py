"""The traceable decision store: SQLite (one writer thread), content-addressed images, audit chain.

Read with :mod:`inspector.store.queries`; write decisions through :class:`StoreWriter`;
check the record with :func:`verify`.
"""

from inspector.store.audit import Problem, VerifyResult, audit_head, verify
from inspector.store.db import SchemaTooNewError, StoreError, open_db, transaction
from inspector.store.export import export
from inspector.store.images import ImageStore, PruneReport, retention
from inspector.store.writer import DecisionRecord, RecordError, Stored, StoreWriter

__all__ = [
    "DecisionRecord", "ImageStore", "Problem", "PruneReport", "RecordError", "SchemaTooNewError", "Stored",
    "StoreError", "StoreWriter", "VerifyResult", "audit_head", "export", "open_db", "retention", "transaction",
    "verify",
]
