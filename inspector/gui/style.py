"""Colours shared by every view: verdicts and detection classes."""

from __future__ import annotations

from PySide6.QtGui import QColor

VERDICT_COLORS: dict[str, str] = {
    "pass": "#2e9d3a",
    "fail": "#d62f2f",
    "review": "#f0a202",
    "error": "#808080",
    "not_inspected": "#c8c8c8",
}
# Colour-blind-friendly palette (Okabe-Ito + extras), one per class index.
CLASS_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#7F3C8D",
                 "#11A579", "#3969AC")


def verdict_color(verdict: str | None) -> QColor:
    return QColor(VERDICT_COLORS.get(str(verdict), "#c8c8c8"))


def class_color(class_id: int) -> QColor:
    return QColor(CLASS_PALETTE[int(class_id) % len(CLASS_PALETTE)])


def class_color_by_name(name: str | None, class_names: tuple[str, ...] | list[str]) -> QColor:
    try:
        return class_color(list(class_names).index(name))
    except ValueError:
        return QColor("#ffffff")
