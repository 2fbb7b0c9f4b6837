"""Wafer-level rules: judge a wafer from the verdicts of its dies.

Pure numpy. Input: one wafer's die results (die ``(x, y)`` index -> verdict and the class ids
found on the die) and its die layout (every die index on the wafer, which are edge dies, die
pitch). ``WaferRuleSet.evaluate`` returns a ``WaferResult``: verdict, reasons, the wafer map
and, when a ``SpatialSignature`` rule is configured, the spatial signature found.

A die counts as *defective* when its verdict is FAIL. REVIEW dies are not counted: they await
a person, and counting them would let an uncertain model fail whole wafers; once reviewed they
become PASS or FAIL and the wafer can be judged again.

Spatial signatures (``find_signatures``) must not be seen in random defects, even at high
defect rates, so the line and cluster detectors are significance tests against "defective
dies placed at random at the wafer's observed rate p":

- edge_ring: the outermost ring's defect fraction is >= 0.5, >= 3x the interior's, and at
  least ``min_dies`` edge dies are defective.
- scratch_line: every direction on a grid fine enough for the wafer's diameter (angle step
  1 / (2 D) rad, D = wafer extent in pitches) times every offset on a quarter-pitch grid gives a
  band of dies whose centres lie within half a pitch of one straight line, ordered along it (an
  exhaustive line search, discretised below the tolerance). In each band the best run of
  defective dies with at most one gap (one non-defective die) of l band dies, k defective,
  has P(Bin(l, p) >= k); the line is significant when that probability times the number of
  distinct (band, window) pairs examined (Bonferroni) is <= ``alpha``. With
  ``scratch_class_ids`` and class information, only dies with a scratch class are candidates.
- cluster: square windows of 2..5 dies a side; a window with k defective of m dies has
  P(Bin(m, p) >= k), Bonferroni-corrected by the number of windows. Defective dies in
  significant windows, grouped by 8-connectivity, form clusters of >= ``min_dies``.

Bonferroni bounds the chance of calling random defects a line (or a cluster) by ``alpha`` per
wafer, whatever p is; it is conservative (the windows overlap), which costs some power on small
patterns in heavy background but never needs a simulation or a cache of null distributions.

Each defective die is explained once: dies of a found edge ring are taken out before lines and
clusters are searched (the ring's flat top row is not also a line); where a line and a cluster
share dies, the more significant one keeps them and the other is searched again without them
(a scratch is not also a cluster, a blob's short straight runs are not a scratch). p is
re-estimated on the dies left. A few hundred dies are needed to tell patterns from chance: on a
29-die wafer only strong ones are found.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.core.decision import Reason, Verdict

Die = tuple[int, int]
SIGNATURE_ORDER: tuple[str, ...] = ("edge_ring", "scratch_line", "cluster")
COVERAGE_RULE_ID = "wafer.coverage"  # not a valid config slug, so it can never clash with a rule id

_JUDGED = (Verdict.PASS, Verdict.FAIL, Verdict.REVIEW)


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DieResult:
    """The outcome of one die: its verdict and the class ids of the boxes it kept."""

    verdict: Verdict
    class_ids: frozenset[int] = frozenset()

    @classmethod
    def of(cls, value: Any) -> DieResult:
        """Accept a ``DieResult``, a ``Verdict`` / verdict string, or ``(verdict, class_ids)``."""
        if isinstance(value, DieResult):
            return value
        if isinstance(value, (Verdict, str)):
            return cls(Verdict(value))
        verdict, classes = value
        return cls(Verdict(verdict), frozenset(int(c) for c in classes))


@dataclass(frozen=True, eq=False)
class DieLayout:
    """The dies of a wafer as plain arrays: (N, 2) int indices, an (N,) edge mask, the pitch."""

    dies: np.ndarray
    edge: np.ndarray
    pitch_mm: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        dies = np.asarray(self.dies, np.int64).reshape(-1, 2)
        edge = np.asarray(self.edge, bool).reshape(-1)
        if len(edge) != len(dies):
            raise ValueError(f"DieLayout: edge mask of {len(edge)} for {len(dies)} dies")
        if len(dies) == 0:
            raise ValueError("DieLayout: a wafer needs at least one die")
        if len({(int(x), int(y)) for x, y in dies}) != len(dies):
            raise ValueError("DieLayout: duplicate die indices")
        object.__setattr__(self, "dies", dies)
        object.__setattr__(self, "edge", edge)
        object.__setattr__(self, "pitch_mm", (float(self.pitch_mm[0]), float(self.pitch_mm[1])))

    @classmethod
    def from_dies(cls, dies: Iterable[Die], pitch_mm: tuple[float, float] = (1.0, 1.0),
                  edge: Iterable[bool] | None = None) -> DieLayout:
        """Layout from die indices; edge dies default to those with a 4-neighbour off the wafer."""
        arr = np.asarray(list(dies), np.int64).reshape(-1, 2)
        if edge is None:
            have = {(int(x), int(y)) for x, y in arr}
            edge = [any((x + dx, y + dy) not in have for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)))
                    for x, y in arr.tolist()]
        return cls(arr, np.asarray(list(edge), bool), pitch_mm)

    @classmethod
    def of(cls, layout: Any) -> DieLayout:
        """A ``DieLayout``, a ``WaferLayout`` (anything with ``dies_array`` and ``edge_mask()``),
        or a sequence of die indices."""
        if isinstance(layout, DieLayout):
            return layout
        if hasattr(layout, "dies_array") and hasattr(layout, "edge_mask"):
            pitch = (float(layout.die_pitch_x_mm), float(layout.die_pitch_y_mm))
            return cls(np.asarray(layout.dies_array), np.asarray(layout.edge_mask()), pitch)
        return cls.from_dies(layout)

    def __len__(self) -> int:
        return len(self.dies)

    @property
    def key(self) -> bytes:
        """Identity of the geometry, for caches."""
        return self.dies.tobytes() + np.asarray(self.pitch_mm, np.float64).tobytes()

    def index(self) -> dict[Die, int]:
        return {(int(x), int(y)): i for i, (x, y) in enumerate(self.dies.tolist())}

    def grid_index(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(rows, cols, shape) of each die on the wafer-map grid (row 0 = top = largest y)."""
        x, y = self.dies[:, 0], self.dies[:, 1]
        rows, cols = y.max() - y, x - x.min()
        return rows, cols, (int(rows.max()) + 1, int(cols.max()) + 1)


@dataclass(frozen=True, eq=False)
class WaferInput:
    """One wafer's dies, aligned with ``layout.dies``."""

    layout: DieLayout
    verdicts: tuple[Verdict | None, ...]  # None: no result for that die
    class_ids: tuple[frozenset[int], ...]
    failed: np.ndarray                    # (N,) bool: verdict FAIL
    judged: np.ndarray                    # (N,) bool: verdict PASS / FAIL / REVIEW

    @classmethod
    def build(cls, die_results: Mapping[Die, Any], layout: Any) -> WaferInput:
        lay = DieLayout.of(layout)
        res = {(int(d[0]), int(d[1])): DieResult.of(v) for d, v in die_results.items()}
        got = [res.get((int(x), int(y))) for x, y in lay.dies.tolist()]
        verdicts = tuple(r.verdict if r else None for r in got)
        classes = tuple(r.class_ids if r else frozenset() for r in got)
        failed = np.array([v is Verdict.FAIL for v in verdicts], bool)
        judged = np.array([v in _JUDGED for v in verdicts], bool)
        return cls(lay, verdicts, classes, failed, judged)

    @property
    def defect_fraction(self) -> float:
        """Failed dies over judged dies (0 when nothing was judged)."""
        n = int(self.judged.sum())
        return float(self.failed.sum()) / n if n else 0.0


@dataclass(frozen=True)
class SignatureFinding:
    """One spatial signature found: its dies (indices into the layout) and why it counts."""

    kind: str
    dies: tuple[int, ...]
    detail: str


@dataclass(frozen=True)
class WaferStep:
    reasons: tuple[Reason, ...] = ()
    findings: Mapping[str, SignatureFinding] = field(default_factory=dict)


@dataclass(frozen=True)
class WaferResult:
    """The outcome of the wafer rules on one wafer.

    ``signature``: None when no spatial-signature rule is configured, else the first signature
    found (in ``SIGNATURE_ORDER``), or "random" (defective dies without a pattern) or "none"
    (no defective die). ``die_map`` holds every die's verdict value ("not_inspected" where a die
    of the layout has no result).
    """

    verdict: Verdict
    reasons: tuple[Reason, ...]
    signature: str | None
    die_map: dict[Die, str]
    defect_fraction: float
    signature_dies: dict[str, tuple[Die, ...]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Statistics helpers
# ------------------------------------------------------------------------------------------------


def _log_binom_sf_table(m_max: int, p: float) -> np.ndarray:
    """T[m, k] = log P(Bin(m, p) >= k) for 0 <= k <= m + 1 <= m_max + 1 (-inf beyond m)."""
    lp, lq = math.log(p), math.log1p(-p)
    table = np.full((m_max + 1, m_max + 2), -np.inf)
    for m in range(m_max + 1):
        k = np.arange(m + 1)
        lgam = np.array([math.lgamma(m + 1) - math.lgamma(j + 1) - math.lgamma(m - j + 1) for j in range(m + 1)])
        logpmf = lgam + k * lp + (m - k) * lq
        table[m, : m + 1] = np.logaddexp.accumulate(logpmf[::-1])[::-1]
    return table


def _components8(cells: set[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """8-connected components of a (small) set of grid cells."""
    todo, out = set(cells), []
    while todo:
        stack, comp = [todo.pop()], []
        while stack:
            r, c = stack.pop()
            comp.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    nb = (r + dr, c + dc)
                    if nb in todo:
                        todo.remove(nb)
                        stack.append(nb)
        out.append(comp)
    return out


# --- line bands (geometry only, cached per layout) -------------------------------------------


@dataclass(frozen=True, eq=False)
class _Bands:
    order: np.ndarray  # (R * N,) die index, rows = (direction, offset grid), sorted by (band, position)
    band: np.ndarray   # (R * N,) band id, increasing along the array
    log_family: float  # log of the number of distinct (band, window) pairs: the Bonferroni factor


_BANDS_CACHE: OrderedDict[bytes, _Bands] = OrderedDict()
_BANDS_LOCK = threading.Lock()
_SHIFTS = 4  # offset grids a quarter pitch apart: some grid is within 1/8 pitch of any line


def _line_bands(layout: DieLayout) -> _Bands:
    key = layout.key
    with _BANDS_LOCK:
        if key in _BANDS_CACHE:
            _BANDS_CACHE.move_to_end(key)
            return _BANDS_CACHE[key]
    px, py = layout.pitch_mm
    pm = math.sqrt(px * py)
    u = layout.dies[:, 0] * (px / pm)  # die centres in units of (mean) pitch
    v = layout.dies[:, 1] * (py / pm)
    extent = max(float(np.ptp(u)), float(np.ptp(v))) + 1.0
    # Angle step 1 / (2 extent): over the whole wafer a line drifts < 1/4 pitch from its grid direction.
    n_dir = max(4, int(math.ceil(2.0 * math.pi * extent)))
    orders, bands, seen = [], [], set()
    log_terms: list[int] = []
    next_band = 0
    for j in range(n_dir):
        th = j * math.pi / n_dir
        s = -math.sin(th) * u + math.cos(th) * v  # across the line
        t = math.cos(th) * u + math.sin(th) * v   # along the line
        for k in range(_SHIFTS):
            b = np.floor(s - s.min() + k / _SHIFTS).astype(np.int64)  # bands one pitch wide
            o = np.lexsort((t, b))
            bb = b[o]
            new = np.r_[True, bb[1:] != bb[:-1]]
            orders.append(o)
            bands.append(np.cumsum(new) - 1 + next_band)
            next_band = int(bands[-1][-1]) + 1
            starts = np.flatnonzero(new)
            for a, e in zip(starts.tolist(), np.r_[starts[1:], len(o)].tolist()):
                members = o[a:e].tobytes() if e - a > 1 else None
                if members is not None and members not in seen:  # count each distinct band once
                    seen.add(members)
                    log_terms.append((e - a) * (e - a + 1) // 2)
    fam = max(1, sum(log_terms))
    out = _Bands(np.concatenate(orders), np.concatenate(bands), math.log(fam))
    with _BANDS_LOCK:
        _BANDS_CACHE[key] = out
        while len(_BANDS_CACHE) > 8:
            _BANDS_CACHE.popitem(last=False)
    return out


def _best_line(cand: np.ndarray, p: float, bands: _Bands, min_dies: int) -> tuple[float, np.ndarray] | None:
    """Most significant run (<= 1 gap) of candidate dies along any band: (log p-value, dies)."""
    x = cand[bands.order]
    band = bands.band
    same_prev = np.r_[False, band[1:] == band[:-1]]
    same_next = np.r_[band[:-1] == band[1:], False]
    start = np.flatnonzero(x & ~(np.r_[False, x[:-1]] & same_prev))
    end = np.flatnonzero(x & ~(np.r_[x[1:], False] & same_next))
    if len(start) == 0:
        return None
    k1 = end - start + 1
    # Two runs joined by exactly one non-candidate die of the same band: one gap.
    joined = (start[1:] == end[:-1] + 2) & (band[start[1:]] == band[end[:-1]])
    k2 = (k1[:-1] + k1[1:])[joined]
    lp, lq = math.log(p), math.log1p(-p)
    logp1 = np.where(k1 >= min_dies, k1 * lp, np.inf)  # P(l of l): p^l
    l2 = k2 + 1                                        # P(>= l-1 of l) = p^l + l p^(l-1) q
    logp2 = np.where(k2 >= min_dies, np.logaddexp(l2 * lp, np.log(l2) + (l2 - 1) * lp + lq), np.inf)
    i1 = int(np.argmin(logp1)) if len(logp1) else -1
    i2 = int(np.argmin(logp2)) if len(logp2) else -1
    best1 = logp1[i1] if i1 >= 0 else np.inf
    best2 = logp2[i2] if i2 >= 0 else np.inf
    if not np.isfinite(min(best1, best2)):
        return None
    if best1 <= best2:
        a, e, logp = start[i1], end[i1], float(best1)
    else:
        pair = np.flatnonzero(joined)[i2]
        a, e, logp = start[pair], end[pair + 1], float(best2)
    dies = bands.order[a : e + 1]
    return logp, dies[cand[dies]]


# ------------------------------------------------------------------------------------------------
# Signature detection
# ------------------------------------------------------------------------------------------------


def find_signatures(
    defective: np.ndarray,
    layout: DieLayout,
    *,
    min_dies: int = 3,
    alpha: float = 0.01,
    line_candidates: np.ndarray | None = None,
    edge_min_fraction: float = 0.5,
    edge_ratio: float = 3.0,
) -> dict[str, SignatureFinding]:
    """Spatial signatures in a map of defective dies (bool per ``layout.dies``); see the module doc.

    ``line_candidates`` (bool per die) restricts scratch lines to those dies (e.g. dies with a
    scratch class); default: every defective die.
    """
    defective = np.asarray(defective, bool)
    n = len(layout)
    if defective.shape != (n,):
        raise ValueError(f"find_signatures: defect map of shape {defective.shape} for {n} dies")
    cand_all = defective if line_candidates is None else np.asarray(line_candidates, bool)
    found: dict[str, SignatureFinding] = {}
    active = np.ones(n, bool)  # dies not yet explained by a signature

    # Edge ring: a plain fraction test; the ring is a fixed, pre-declared set of dies.
    edge = layout.edge
    n_edge, n_inner = int(edge.sum()), int((~edge).sum())
    bad_edge = int((defective & edge).sum())
    if n_edge:
        f_edge = bad_edge / n_edge
        f_inner = float((defective & ~edge).sum()) / n_inner if n_inner else 0.0
        if bad_edge >= min_dies and f_edge >= edge_min_fraction and f_edge >= edge_ratio * f_inner:
            dies = np.flatnonzero(defective & edge)
            found["edge_ring"] = SignatureFinding("edge_ring", tuple(dies.tolist()),
                                                  f"{bad_edge} of {n_edge} edge dies defective ({f_edge:.0%}) "
                                                  f"against {f_inner:.0%} inside")
            active &= ~edge

    log_alpha = math.log(alpha)
    line = _find_line(cand_all & active, active, layout, log_alpha, min_dies)
    clusters = _find_clusters(defective & active, active, layout, log_alpha, min_dies)
    if line is not None:
        # Each die goes to the signature that explains it best: a dense blob also contains short
        # straight runs, and a line touching a cluster would otherwise be counted twice.
        on_line = set(line[1].tolist())
        rival = [c for c in clusters if on_line.intersection(c[1])]
        if rival and min(c[0] for c in rival) < line[0]:
            rest = active.copy()
            rest[[i for c in clusters for i in c[1]]] = False
            line = _find_line(cand_all & rest, rest, layout, log_alpha, min_dies)
        else:
            rest = active.copy()
            rest[line[1]] = False
            clusters = _find_clusters(defective & rest, rest, layout, log_alpha, min_dies)
    if line is not None:
        logp, dies, p = line
        found["scratch_line"] = SignatureFinding(
            "scratch_line", tuple(sorted(dies.tolist())),
            f"{len(dies)} defective dies along one line (chance at a {p:.0%} rate: p = {math.exp(logp):.1e})")
    if clusters:
        dies_c = sorted(i for c in clusters for i in c[1])
        sizes = ", ".join(str(len(c[1])) for c in clusters)
        found["cluster"] = SignatureFinding(
            "cluster", tuple(dies_c),
            f"{len(clusters)} cluster{'s' if len(clusters) > 1 else ''} of {sizes} dies (chance: "
            f"p = {math.exp(min(c[0] for c in clusters)):.1e})")
    return {k: found[k] for k in SIGNATURE_ORDER if k in found}


def _find_line(cand: np.ndarray, active: np.ndarray, layout: DieLayout, log_alpha: float,
               min_dies: int) -> tuple[float, np.ndarray, float] | None:
    """The most significant line: (Bonferroni-corrected log p, dies, candidate rate), or None."""
    p = float(cand.sum()) / max(1, int(active.sum()))
    if not 0.0 < p < 1.0 or cand.sum() < min_dies:
        return None
    bands = _line_bands(layout)
    best = _best_line(cand, p, bands, min_dies)
    if best is None or best[0] + bands.log_family > log_alpha:
        return None
    return best[0] + bands.log_family, best[1], p


_WINDOWS = (2, 3, 4, 5)  # cluster scan window sides, in dies


def _find_clusters(bad: np.ndarray, active: np.ndarray, layout: DieLayout, log_alpha: float,
                   min_dies: int) -> list[tuple[float, list[int]]]:
    """Significant clusters, largest first: (Bonferroni-corrected log p of the best window, dies)."""
    p = float(bad.sum()) / max(1, int(active.sum()))
    if not 0.0 < p < 1.0 or bad.sum() < min_dies:
        return []
    rows, cols, shape = layout.grid_index()
    g_bad = np.zeros(shape, np.int64)
    g_act = np.zeros(shape, np.int64)
    g_bad[rows, cols] = bad
    g_act[rows, cols] = active
    cb = np.pad(g_bad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area tables
    ca = np.pad(g_act.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    table = _log_binom_sf_table(max(_WINDOWS) ** 2, p)
    windows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    family = 0
    for w in _WINDOWS:
        if w > min(shape):
            continue
        k = cb[w:, w:] - cb[:-w, w:] - cb[w:, :-w] + cb[:-w, :-w]
        m = ca[w:, w:] - ca[:-w, w:] - ca[w:, :-w] + ca[:-w, :-w]
        family += int((m >= 2).sum())
        logsf = np.where(k >= 2, table[m, k], 0.0)
        r, c = np.nonzero(logsf <= log_alpha)  # uncorrected pre-filter; corrected below
        windows.append((w, r, c, logsf[r, c]))
    log_family = math.log(max(1, family))
    cell_logp: dict[tuple[int, int], float] = {}
    for w, rs, cs, lps in windows:
        for r, c, lp in zip(rs.tolist(), cs.tolist(), lps.tolist()):
            lp += log_family  # Bonferroni over every window examined
            if lp > log_alpha:
                continue
            rr, cc = np.nonzero(g_bad[r : r + w, c : c + w])
            for cell in zip((rr + r).tolist(), (cc + c).tolist()):
                cell_logp[cell] = min(lp, cell_logp.get(cell, 0.0))
    if not cell_logp:
        return []
    where = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))}
    out = [(min(cell_logp[cell] for cell in comp), sorted(where[cell] for cell in comp))
           for comp in _components8(set(cell_logp))]
    return sorted((c for c in out if len(c[1]) >= min_dies), key=lambda c: len(c[1]), reverse=True)


# ------------------------------------------------------------------------------------------------
# Wafer rules
# ------------------------------------------------------------------------------------------------


def _as_verdict(v: Verdict | str) -> Verdict:
    return v if isinstance(v, Verdict) else Verdict(v)


@dataclass(frozen=True, kw_only=True, eq=False)
class DefectDieFraction:
    """Fire when more than ``max_fraction`` of the judged dies failed (REVIEW dies do not count)."""

    id: str
    max_fraction: float
    verdict: Verdict = Verdict.FAIL

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", _as_verdict(self.verdict))

    def apply(self, w: WaferInput) -> WaferStep:
        frac = w.defect_fraction
        if frac <= self.max_fraction:
            return WaferStep()
        msg = (f"{int(w.failed.sum())} of {int(w.judged.sum())} judged dies failed ({frac:.1%}), "
               f"more than {self.max_fraction:.1%}")
        return WaferStep((Reason(self.id, self.verdict, msg),))


@dataclass(frozen=True, kw_only=True, eq=False)
class SpatialSignature:
    """Fire when one of ``signatures`` is found among the failed dies (see ``find_signatures``)."""

    id: str
    signatures: tuple[str, ...] = SIGNATURE_ORDER
    min_dies: int = 3
    verdict: Verdict = Verdict.FAIL
    scratch_class_ids: tuple[int, ...] | None = None
    alpha: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", _as_verdict(self.verdict))
        object.__setattr__(self, "signatures", tuple(self.signatures))
        unknown = set(self.signatures) - set(SIGNATURE_ORDER)
        if unknown:
            raise ValueError(f"spatial signature rule {self.id!r}: unknown signatures {sorted(unknown)}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"spatial signature rule {self.id!r}: alpha must be in (0, 1), got {self.alpha}")

    def apply(self, w: WaferInput) -> WaferStep:
        line_cand = None
        if self.scratch_class_ids and any(w.class_ids):  # class information is present
            scratch = set(self.scratch_class_ids)
            line_cand = w.failed & np.array([bool(c & scratch) for c in w.class_ids], bool)
        found = find_signatures(w.failed, w.layout, min_dies=self.min_dies, alpha=self.alpha,
                                line_candidates=line_cand)
        # Every finding is reported (the wafer map shows it); only the configured ones judge the wafer.
        reasons = tuple(Reason(self.id, self.verdict, f"{k}: {f.detail}") for k, f in found.items()
                        if k in self.signatures)
        return WaferStep(reasons, found)


WaferRule = DefectDieFraction | SpatialSignature  # the built-in kinds; any object with `id` and `apply` works


class WaferRuleSet:
    """Wafer rules in config order. ``unjudged_verdict``: the verdict a wafer gets when some of
    its dies have no result or an ERROR / NOT_INSPECTED one (None: say nothing)."""

    def __init__(self, rules: Sequence[Any], unjudged_verdict: Verdict | None = Verdict.REVIEW) -> None:
        ids = [r.id for r in rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"WaferRuleSet: duplicate rule ids {dupes}")
        self.rules = tuple(rules)
        self.unjudged_verdict = unjudged_verdict

    def evaluate(self, die_results: Mapping[Die, Any], layout: Any) -> WaferResult:
        w = WaferInput.build(die_results, layout)
        reasons: list[Reason] = []
        findings: dict[str, SignatureFinding] = {}
        for rule in self.rules:
            try:
                step = rule.apply(w)
            except Exception as exc:  # noqa: BLE001 - a rule bug must become an ERROR record
                reasons.append(Reason(rule.id, Verdict.ERROR, f"rule {rule.id!r} failed: {type(exc).__name__}: {exc}"))
                continue
            reasons.extend(step.reasons)
            for k, f in step.findings.items():
                findings.setdefault(k, f)
        n_unjudged = int((~w.judged).sum())
        if n_unjudged and self.unjudged_verdict is not None:
            n_missing = sum(v is None for v in w.verdicts)
            reasons.append(Reason(COVERAGE_RULE_ID, self.unjudged_verdict,
                                  f"{n_unjudged} of {len(w.layout)} dies not judged ({n_missing} without a result, "
                                  f"{n_unjudged - n_missing} error / not inspected)"))
        signature: str | None = None
        if any(isinstance(r, SpatialSignature) for r in self.rules):
            first = next((k for k in SIGNATURE_ORDER if k in findings), None)
            signature = first or ("random" if w.failed.any() else "none")
        dies = [(int(x), int(y)) for x, y in w.layout.dies.tolist()]
        die_map = {d: (v.value if v is not None else Verdict.NOT_INSPECTED.value) for d, v in zip(dies, w.verdicts)}
        for d, v in die_results.items():  # results for dies off the layout are still shown
            die_map.setdefault((int(d[0]), int(d[1])), DieResult.of(v).verdict.value)
        return WaferResult(
            verdict=Verdict.worst(r.verdict for r in reasons),
            reasons=tuple(reasons),
            signature=signature,
            die_map=die_map,
            defect_fraction=w.defect_fraction,
            signature_dies={k: tuple(dies[i] for i in f.dies) for k, f in findings.items()},
        )
