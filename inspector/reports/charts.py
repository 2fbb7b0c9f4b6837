"""The report's charts as PNG bytes: incidents per day by kind, this period against the previous one
by kind, and a breakdown by zone or camera.

matplotlib's object API on the Agg canvas, never pyplot: no display, no global figure state, so
charts can be drawn on any thread (the scheduled reports run on one of their own).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from inspector.reports.summary import Count, Summary

# One colour per incident kind across every chart and page (colour-blind safe: Okabe-Ito).
KIND_COLOURS = {"in_danger_zone": "#D55E00", "no_hard_hat": "#E69F00", "no_vest": "#0072B2"}
OTHER_COLOUR = "#999999"
PREVIOUS_COLOUR = "#C8C8C8"
BAR_COLOUR = "#0072B2"
DPI = 150


def kind_label(kind: str) -> str:
    return {"no_hard_hat": "No hard hat", "no_vest": "No hi-vis vest",
            "in_danger_zone": "In danger zone"}.get(kind, kind.replace("_", " ").capitalize())


def kind_colour(kind: str) -> str:
    return KIND_COLOURS.get(kind, OTHER_COLOUR)


def _figure(w_in: float, h_in: float) -> Figure:
    fig = Figure(figsize=(w_in, h_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.title.set_fontsize(10)
    ax.title.set_fontweight("bold")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def daily_chart(summary: Summary, w_in: float = 7.2, h_in: float = 2.6) -> bytes:
    """Incidents opened per day, stacked by kind."""
    fig = _figure(w_in, h_in)
    ax = fig.add_subplot()
    days = [d for d, _ in summary.by_day]
    kinds = [c.name for c in summary.by_kind if c.n]
    bottom = [0] * len(days)
    x = list(range(len(days)))
    for k in kinds:
        vals = [counts.get(k, 0) for _, counts in summary.by_day]
        ax.bar(x, vals, bottom=bottom, color=kind_colour(k), label=kind_label(k), width=0.8)
        bottom = [b + v for b, v in zip(bottom, vals)]
    step = max(1, len(days) // 14)  # at most ~14 date labels
    ax.set_xticks(x[::step], [f"{d:%d %b}" for d in days[::step]])
    ax.set_xlim(-0.6, len(days) - 0.4)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("incidents", fontsize=8)
    ax.set_title("Incidents per day")
    if kinds:
        ax.legend(fontsize=7, frameon=False, ncols=len(kinds), loc="upper left", bbox_to_anchor=(0, -0.12))
    else:
        ax.text(0.5, 0.5, "no incidents in this period", transform=ax.transAxes, ha="center", color="#666666")
    _style(ax)
    return _png(fig)


def compare_chart(counts: Sequence[Count], title: str, *, by_kind: bool = False, w_in: float = 3.5,
                  h_in: float = 2.4, top: int = 8) -> bytes:
    """Horizontal bars: this period (coloured) beside the previous one (grey), biggest first."""
    shown = list(counts)[:top]
    fig = _figure(w_in, h_in)
    ax = fig.add_subplot()
    y = list(range(len(shown)))[::-1]
    labels = [kind_label(c.name) if by_kind else c.name for c in shown]
    colours = [kind_colour(c.name) if by_kind else BAR_COLOUR for c in shown]
    ax.barh([v + 0.2 for v in y], [c.n for c in shown], height=0.4, color=colours, label="this period")
    ax.barh([v - 0.2 for v in y], [c.previous for c in shown], height=0.4, color=PREVIOUS_COLOUR,
            label="previous period")
    for v, c in zip(y, shown):
        ax.text(c.n, v + 0.2, f" {c.n}", va="center", fontsize=7)
    ax.set_yticks(y, labels)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    if not shown:
        ax.text(0.5, 0.5, "none", transform=ax.transAxes, ha="center", color="#666666")
    ax.legend(fontsize=7, frameon=False, ncols=2, loc="upper left", bbox_to_anchor=(0, -0.1))
    _style(ax)
    return _png(fig)


__all__ = ["KIND_COLOURS", "compare_chart", "daily_chart", "kind_colour", "kind_label"]
