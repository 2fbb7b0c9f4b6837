"""Benchmark of ensemble fusion against ``ensemble-boxes`` (the reference implementation).

Scenes: one set of ground-truth boxes (10 classes, 12..80 px, in a 1920 x 1080 frame); each of
the 3 models sees about 92 % of them with its corners jittered by 6 % of the box size, plus
false positives, so that clusters of 1..3 boxes and a few larger overlapping groups form.
``ensemble-boxes`` gets the same boxes normalised to [0, 1] (as it expects), in float64.

Times are medians of single calls (``time.perf_counter``); ours and the reference's calls are
interleaved so that both see the same machine load. ``run()`` returns::

    {"fusion_speedup_vs_ensemble_boxes": WBF speed-up at 3 models x 1000 boxes,
     "fusion_ms_3x100": our WBF, 3 x 100 boxes, "fusion_ms_3x1000": our WBF, 3 x 1000 boxes,
     "ensemble_boxes_ms_3x1000": ensemble_boxes.weighted_boxes_fusion, 3 x 1000 boxes, ...}

plus the same for NMS and k-of-n voting. ``bench/run.py`` collects it. Run alone:
``python bench/bench_fusion.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(REPO))

from inspector.core.detections import Detections  # noqa: E402
from inspector.core.fusion import consensus_vote, nms_fusion, weighted_boxes_fusion  # noqa: E402

SIZE = (1920, 1080)


def scene(n_boxes: int, n_models: int = 3, n_classes: int = 10, seed: int = 0) -> list[Detections]:
    """``n_models`` jittered views of one ground truth, ``n_boxes`` boxes per model."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    frame = np.array([w, h, w, h], float)
    wh = rng.uniform(12, 80, (n_boxes, 2))
    center = rng.uniform([0, 0], [w, h], (n_boxes, 2))
    truth = np.clip(np.concatenate([center - wh / 2, center + wh / 2], 1), 0, frame)
    truth_cls = rng.integers(0, n_classes, n_boxes)
    per_model = []
    for t in range(n_models):
        seen = rng.random(n_boxes) < 0.92
        boxes = truth[seen] + rng.normal(0, 0.06, (int(seen.sum()), 4)) * np.tile(wh[seen], 2)
        n_fp = n_boxes - len(boxes)
        fp_c = rng.uniform([0, 0], [w, h], (n_fp, 2))
        fp_wh = rng.uniform(12, 80, (n_fp, 2))
        boxes = np.concatenate([boxes, np.concatenate([fp_c - fp_wh / 2, fp_c + fp_wh / 2], 1)])
        boxes = np.clip(boxes, 0, frame)
        boxes[:, 2:] = np.minimum(np.maximum(boxes[:, 2:], boxes[:, :2] + 1), frame[2:])
        boxes[:, :2] = np.minimum(boxes[:, :2], boxes[:, 2:] - 1)
        scores = np.concatenate([rng.uniform(0.3, 1.0, len(boxes) - n_fp), rng.uniform(0.05, 0.5, n_fp)])
        classes = np.concatenate([truth_cls[seen], rng.integers(0, n_classes, n_fp)])
        per_model.append(Detections(boxes, scores, classes, t))
    return per_model


def _reference_inputs(per_model: list[Detections]) -> tuple[list, list, list]:
    frame = np.array([SIZE[0], SIZE[1], SIZE[0], SIZE[1]], float)
    return ([d.xyxy.astype(np.float64) / frame for d in per_model],
            [d.score.astype(np.float64) for d in per_model],
            [d.class_id for d in per_model])


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 4)


def _time_pair(ours, ref, calls_ours: int, calls_ref: int) -> tuple[float, float | None]:  # noqa: ANN001
    """Median ms of ``ours()`` and ``ref()`` (or None), calls interleaved, after a warm-up call."""
    ours()
    if ref is not None:
        ref()
    t_ours, t_ref = [], []
    per_ref = max(1, calls_ours // max(calls_ref, 1))
    for i in range(calls_ours):
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
        if ref is not None and i % per_ref == 0 and len(t_ref) < calls_ref:
            t0 = time.perf_counter()
            ref()
            t_ref.append(time.perf_counter() - t0)
    return _median_ms(t_ours), (_median_ms(t_ref) if ref is not None else None)


def run(repeats: int = 15) -> dict[str, float]:
    """Median timings; the reference is called ``repeats`` times per size, ours 20x as often."""
    try:
        import ensemble_boxes
    except ImportError:  # the dev extra: without it, time ours alone
        ensemble_boxes = None
    results: dict[str, float] = {}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in (100, 1000):
            per_model = scene(n)
            bl, sl, ll = _reference_inputs(per_model)
            ref_wbf = ref_nms = None
            if ensemble_boxes is not None:
                def ref_wbf() -> object:
                    return ensemble_boxes.weighted_boxes_fusion(bl, sl, ll)

                def ref_nms() -> object:
                    return ensemble_boxes.nms([b.copy() for b in bl], [s.copy() for s in sl], ll)

                _check_same(weighted_boxes_fusion(per_model), ref_wbf(), "WBF")
                _check_same(nms_fusion(per_model), ref_nms(), "NMS")
            calls = repeats * 20
            wbf_ms, ref_wbf_ms = _time_pair(lambda: weighted_boxes_fusion(per_model), ref_wbf, calls, repeats)
            nms_ms, ref_nms_ms = _time_pair(lambda: nms_fusion(per_model), ref_nms, calls, repeats)
            vote_ms, _ = _time_pair(lambda: consensus_vote(per_model, 2), None, calls, 0)
            tag = f"3x{n}"
            results[f"fusion_ms_{tag}"] = wbf_ms
            results[f"nms_ms_{tag}"] = nms_ms
            results[f"vote_ms_{tag}"] = vote_ms
            if ref_wbf_ms is not None:
                results[f"ensemble_boxes_ms_{tag}"] = ref_wbf_ms
                results[f"ensemble_boxes_nms_ms_{tag}"] = ref_nms_ms
            rows.append((tag, "wbf", wbf_ms, ref_wbf_ms))
            rows.append((tag, "nms", nms_ms, ref_nms_ms))
            rows.append((tag, "vote k=2", vote_ms, None))
    if "ensemble_boxes_ms_3x1000" in results:
        results["fusion_speedup_vs_ensemble_boxes"] = round(
            results["ensemble_boxes_ms_3x1000"] / results["fusion_ms_3x1000"], 1)
        results["nms_speedup_vs_ensemble_boxes"] = round(
            results["ensemble_boxes_nms_ms_3x1000"] / results["nms_ms_3x1000"], 1)
    _print_table(rows)
    return results


def _check_same(ours: Detections, ref: tuple, what: str) -> None:
    frame = np.array([SIZE[0], SIZE[1], SIZE[0], SIZE[1]], float)
    rb, rs, _ = ref
    if len(ours) != len(rb):
        raise AssertionError(f"{what}: {len(ours)} boxes, ensemble-boxes {len(rb)}")
    o1 = np.lexsort((ours.xyxy[:, 0], -ours.score))
    o2 = np.lexsort(((rb[:, 0] * frame[0]).astype(np.float32), -rs.astype(np.float32)))
    if not (np.allclose(ours.xyxy[o1] / frame, rb[o2], atol=1e-4) and np.allclose(ours.score[o1], rs[o2], atol=1e-4)):
        raise AssertionError(f"{what}: results differ from ensemble-boxes")


def _print_table(rows: list[tuple]) -> None:
    print(f"{'boxes':>8} {'method':>9} {'ours ms':>9} {'ensemble-boxes ms':>18} {'speed-up':>9}")
    for tag, method, ours, ref in rows:
        ref_s = f"{ref:.3f}" if ref is not None else "-"
        speed = f"{ref / ours:.1f}x" if ref is not None else "-"
        print(f"{tag:>8} {method:>9} {ours:>9.3f} {ref_s:>18} {speed:>9}")


if __name__ == "__main__":
    print(run())
