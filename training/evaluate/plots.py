"""The evaluation's figures as PNG: PR curves, confusion matrix, reliability diagram."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from training.metrics import ECE_BINS, RECALL_POINTS, EvalReport


def save_plots(report: EvalReport, out_dir: Path | str, title: str = "") -> dict[str, str]:
    """``pr_curves.png`` (per class, IoU 0.5, with the operating point), ``confusion.png`` and
    ``calibration.png`` (reliability diagram) into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = report.class_names
    paths: dict[str, str] = {}

    fig = Figure(figsize=(7, 6), dpi=100)
    ax = fig.subplots()
    prec, rec = report.class_precision, report.class_recall
    for i, n in enumerate(names):
        if report.support[i] == 0:
            continue
        line, = ax.plot(RECALL_POINTS, report.pr_curves[i], lw=1.2, label=f"{n}  AP50 {report.ap50[i]:.3f}")
        if np.isfinite(prec[i]) and np.isfinite(rec[i]):
            ax.plot([rec[i]], [prec[i]], "o", color=line.get_color(), ms=5)
    valid = report.support > 0
    if valid.any():
        ax.plot(RECALL_POINTS, report.pr_curves[valid].mean(0), color="black", lw=2.5,
                label=f"all classes  mAP50 {report.map50:.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"PR curves at IoU 0.5 (dots: operating thresholds)\n{title}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png")
    paths["pr_curves"] = str(out / "pr_curves.png")

    labels = [*names, "background"]
    m = report.confusion.astype(np.float64)
    side = max(5.0, 0.7 * len(labels) + 2)
    fig = Figure(figsize=(side + 1, side), dpi=100)
    ax = fig.subplots()
    row_sum = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, row_sum, out=np.zeros_like(m), where=row_sum > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's row")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="Predicted", ylabel="True", title=f"Confusion at the operating thresholds (IoU 0.5)\n{title}")
    for (r, c_), v in np.ndenumerate(m):
        if v:
            ax.text(c_, r, f"{int(v)}", ha="center", va="center", fontsize=8,
                    color="white" if norm[r, c_] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(out / "confusion.png")
    paths["confusion"] = str(out / "confusion.png")

    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.subplots()
    rel = report.reliability
    width = 1.0 / ECE_BINS
    lower = np.array(rel["lower_edges"])
    acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], dtype=float)
    cf = np.array([np.nan if v is None else v for v in rel["confidence"]], dtype=float)
    has = np.isfinite(acc)
    ax.bar(lower[has], acc[has], width=width, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.bar(lower[has], (cf - acc)[has], bottom=acc[has], width=width, align="edge", color="red", alpha=0.25,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ece = "n/a" if not math.isfinite(report.ece) else f"{report.ece:.3f}"
    ax.set(xlabel="Confidence", ylabel="Accuracy (matched a truth at IoU 0.5)", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability diagram, ECE {ece} (scores >= {report.ece_min_score:g})\n{title}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "calibration.png")
    paths["calibration"] = str(out / "calibration.png")
    return paths

