"""The audit chain's anchors outside the database: signed checkpoints (inspector.store.checkpoints).

The private key is a path *outside* the data folder (the station refuses one inside it): whoever
can write the database should not also be able to sign. Create it with ``inspector db keygen``.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from inspector.config.schema.base import ConfigModel, PathText


class AuditConfig(ConfigModel):
    checkpoint_key: Optional[PathText] = Field(
        None, description="ed25519 private key (PEM, mode 0600, outside the data folder) the station signs audit "
        "checkpoints with; null = no checkpoints. Create it with `inspector db keygen --key PATH`.")
    checkpoint_file: PathText = Field(
        "audit-checkpoints.jsonl", description="Append-only JSON-lines file of signed checkpoints (relative paths "
        "resolve against the data folder; an absolute path on another volume or host is safer).")
    checkpoint_every_decisions: int = Field(
        1000, ge=1, description="Write a checkpoint after this many committed decisions.")
    checkpoint_every_s: float = Field(
        300.0, gt=0, description="... or after this many seconds, whichever comes first (and always at run end).")
