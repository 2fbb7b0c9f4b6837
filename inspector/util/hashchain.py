"""Hash chains: each link's hash covers the previous link's hash and its own content, so editing,
removing, inserting or reordering any link breaks every hash after it.

Both chains in Inspector use this: the store's audit table (one link per row) and the model
registry's event log (one link per JSON line). What a link's content is belongs to each of them;
how links are hashed and walked is here, once.

Limit of any chain kept beside the data it describes: cutting the newest links together with their
data leaves a shorter chain that still holds. Only a head published elsewhere (an anchor) shows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from inspector.util.canonical import canonical_json, sha256_text

GENESIS = "0" * 64  # the "previous hash" of the first link


def link_hash(prev: str, content: Any) -> str:
    """The hash of one link: sha256 of the previous hash followed by the canonical JSON of ``content``."""
    return sha256_text(prev + canonical_json(content))


@dataclass(frozen=True)
class ChainCheck:
    """The result of walking a chain: ``ok``, how many links, the first bad one (1-based) and why,
    and ``head``: the hash of the last link that held (GENESIS for none)."""

    ok: bool
    links: int
    bad_link: int | None = None
    problem: str | None = None
    head: str = GENESIS


@dataclass(frozen=True)
class Link:
    """One stored link as read back: the previous hash it names (None where the format does not store
    it), the hash it claims, and the hash recomputed from its content and the running previous hash."""

    stored_prev: str | None
    stored_hash: str
    computed_hash: str


def walk(links: Iterable[Link], *, genesis: str = GENESIS) -> ChainCheck:
    """Walk stored links in order; stops at the first that does not chain to the one before it."""
    prev = genesis
    n = 0
    for n, link in enumerate(links, start=1):
        if link.stored_prev is not None and link.stored_prev != prev:
            return ChainCheck(False, n, n, "does not chain to the link before it: a link was removed, "
                              "inserted or reordered", prev)
        if link.computed_hash != link.stored_hash:
            return ChainCheck(False, n, n, "its content does not match its hash: it was edited", prev)
        prev = link.stored_hash
    return ChainCheck(True, n, None, None, prev)
