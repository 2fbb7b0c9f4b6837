"""KLARF-style defect files (one per wafer): writer, parser, and the per-wafer defect collector.

Inspector writes the KLARF 1.1 text layout (``Keyword values;`` records, lists ended by ``;``)
with the subset of records listed in docs/mes.md. Conventions:

- ``XINDEX YINDEX`` are Inspector's die indices: die (0, 0) is centred on the wafer centre, x to the
  right, y up (``SampleCenterLocation`` = half a pitch: the wafer centre seen from die (0, 0)'s
  lower-left corner, which is ``DieOrigin 0 0``);
- ``XREL YREL`` (µm) are the defect box centre relative to the die's lower-left corner, assuming
  the die image spans one die pitch (y flipped: image rows grow downwards, KLARF y grows upwards);
- ``XSIZE YSIZE DSIZE`` (µm) are the box width, height and longest side, ``DEFECTAREA`` (µm²) the box
  area; ``CLASSNUMBER`` is 1 + the model's class id (``ClassLookup`` gives the names).

:func:`parse_klarf` reads these files back (and the same records written by other tools); records
it does not know are kept in ``KlarfFile.extra``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from inspector.core.decision import Decision
from inspector.core.frame import Frame

DEFECT_COLUMNS = ("DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX", "XSIZE", "YSIZE", "DEFECTAREA", "DSIZE",
                  "CLASSNUMBER", "TEST", "IMAGECOUNT")
_TS = "%m-%d-%y %H:%M:%S"


class KlarfError(ValueError):
    """A KLARF file could not be parsed; the message names the record."""


@dataclass(frozen=True)
class KlarfDefect:
    defect_id: int
    x_index: int
    y_index: int
    xrel_um: float
    yrel_um: float
    xsize_um: float
    ysize_um: float
    area_um2: float
    dsize_um: float
    class_number: int
    test: int = 1
    image_count: int = 0


@dataclass(frozen=True)
class KlarfFile:
    lot_id: str
    wafer_id: str
    die_pitch_um: tuple[float, float]
    defects: tuple[KlarfDefect, ...]
    classes: tuple[str, ...] = ()
    sample_plan: tuple[tuple[int, int], ...] = ()
    station: tuple[str, ...] = ()             # InspectionStationID: vendor, model, id
    setup_id: str = ""                        # the config hash
    step_id: str = ""
    device_id: str = ""
    slot: int = 0
    diameter_um: float = 0.0
    orientation: str = "DOWN"
    result_time: datetime | None = None
    file_time: datetime | None = None
    extra: dict[str, list[str]] = field(default_factory=dict)

    def class_name(self, number: int) -> str:
        return self.classes[number - 1] if 1 <= number <= len(self.classes) else str(number)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + str(text).replace('"', "'") + '"'


def _f(v: float) -> str:
    return f"{v:.3f}"


def write_klarf(k: KlarfFile) -> str:
    """KLARF text of one wafer (``\\n`` line ends)."""
    rt = (k.result_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    ft = (k.file_time or rt).astimezone(timezone.utc)
    px, py = k.die_pitch_um
    lines = [
        "FileVersion 1 1;",
        f"FileTimestamp {ft.strftime(_TS)};",
        "InspectionStationID " + " ".join(_q(s) for s in (list(k.station) + ["", "", ""])[:3]) + ";",
        "SampleType WAFER;",
        f"ResultTimestamp {rt.strftime(_TS)};",
        f"LotID {_q(k.lot_id)};",
        f"SampleSize 1 {round(k.diameter_um / 1000)};",
        f"DeviceID {_q(k.device_id)};",
        f"SetupID {_q(k.setup_id)} {rt.strftime(_TS)};",
        f"StepID {_q(k.step_id)};",
        "SampleOrientationMarkType NOTCH;",
        f"OrientationMarkLocation {k.orientation.upper()};",
        f"DiePitch {_f(px)} {_f(py)};",
        "DieOrigin 0.000 0.000;",
        f"WaferID {_q(k.wafer_id)};",
        f"Slot {k.slot};",
        f"SampleCenterLocation {_f(px / 2)} {_f(py / 2)};",
        f"ClassLookup {len(k.classes)}",
        *[f" {i} {_q(name)}" for i, name in enumerate(k.classes, start=1)],
        ";",
        "InspectionTest 1;",
        f"SampleTestPlan {len(k.sample_plan)}",
        *[f" {x} {y}" for x, y in k.sample_plan],
        ";",
        f"AreaPerTest {_f(px * py * max(1, len(k.sample_plan)))};",
        f"DefectRecordSpec {len(DEFECT_COLUMNS)} {' '.join(DEFECT_COLUMNS)};",
        "DefectList",
    ]
    for d in k.defects:
        lines.append(f" {d.defect_id} {_f(d.xrel_um)} {_f(d.yrel_um)} {d.x_index} {d.y_index} {_f(d.xsize_um)}"
                     f" {_f(d.ysize_um)} {_f(d.area_um2)} {_f(d.dsize_um)} {d.class_number} {d.test} {d.image_count}")
    lines.append(";")
    n_dies = len(k.sample_plan)
    defect_dies = len({(d.x_index, d.y_index) for d in k.defects})
    area_cm2 = px * py * max(1, n_dies) / 1e8
    lines += ["SummarySpec 5 TESTNO NDEFECT DEFDENSITY NDIE NDEFDIE;", "SummaryList",
              f" 1 {len(k.defects)} {len(k.defects) / area_cm2:.6f} {n_dies} {defect_dies}", ";", "EndOfFile;"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(r'"([^"]*)"|([^\s";]+)|(;)')


def _statements(text: str) -> list[list[str]]:
    out: list[list[str]] = []
    cur: list[str] = []
    for m in _TOKEN.finditer(text):
        quoted, word, semi = m.groups()
        if semi:
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(quoted if quoted is not None else word)
    if cur:
        out.append(cur)
    return out


def _ts(tokens: Sequence[str]) -> datetime | None:
    try:
        return datetime.strptime(f"{tokens[0]} {tokens[1]}", _TS).replace(tzinfo=timezone.utc)
    except (IndexError, ValueError):
        return None


def parse_klarf(text: str) -> KlarfFile:
    """Parse KLARF text (the records Inspector writes; others are kept in ``extra``)."""
    f: dict[str, Any] = {"extra": {}}
    spec: list[str] = list(DEFECT_COLUMNS)
    rows: list[list[str]] = []
    for st in _statements(text):
        kw, args = st[0], st[1:]
        try:
            if kw == "LotID":
                f["lot_id"] = args[0]
            elif kw == "WaferID":
                f["wafer_id"] = args[0]
            elif kw == "DiePitch":
                f["die_pitch_um"] = (float(args[0]), float(args[1]))
            elif kw == "InspectionStationID":
                f["station"] = tuple(args)
            elif kw == "SetupID":
                f["setup_id"] = args[0]
            elif kw == "StepID":
                f["step_id"] = args[0] if args else ""
            elif kw == "DeviceID":
                f["device_id"] = args[0] if args else ""
            elif kw == "Slot":
                f["slot"] = int(args[0])
            elif kw == "SampleSize":
                f["diameter_um"] = float(args[1]) * 1000
            elif kw == "OrientationMarkLocation":
                f["orientation"] = args[0]
            elif kw == "ResultTimestamp":
                f["result_time"] = _ts(args)
            elif kw == "FileTimestamp":
                f["file_time"] = _ts(args)
            elif kw == "ClassLookup":
                n = int(args[0])
                pairs = args[1:1 + 2 * n]
                f["classes"] = tuple(name for _num, name in sorted(
                    ((int(pairs[i]), pairs[i + 1]) for i in range(0, len(pairs), 2))))
            elif kw == "SampleTestPlan":
                n = int(args[0])
                vals = [int(v) for v in args[1:1 + 2 * n]]
                f["sample_plan"] = tuple((vals[i], vals[i + 1]) for i in range(0, len(vals), 2))
            elif kw == "DefectRecordSpec":
                n = int(args[0])
                spec = [c.upper() for c in args[1:1 + n]]
                if len(spec) != n:
                    raise KlarfError(f"DefectRecordSpec announces {n} columns but names {len(spec)}")
            elif kw == "DefectList":
                if len(args) % len(spec):
                    raise KlarfError(f"DefectList has {len(args)} values, not a multiple of the "
                                     f"{len(spec)} columns of DefectRecordSpec")
                rows = [args[i:i + len(spec)] for i in range(0, len(args), len(spec))]
            elif kw == "EndOfFile":
                break
            else:
                f["extra"][kw] = args
        except (IndexError, ValueError) as e:
            if isinstance(e, KlarfError):
                raise
            raise KlarfError(f"KLARF record {kw}: cannot read {' '.join(args)[:80]!r} ({e})") from None
    for need in ("lot_id", "wafer_id", "die_pitch_um"):
        if need not in f:
            raise KlarfError(f"KLARF file has no {dict(lot_id='LotID', wafer_id='WaferID', die_pitch_um='DiePitch')[need]}"
                             " record")
    defects = []
    for i, r in enumerate(rows):
        col = dict(zip(spec, r))

        def num(name: str, default: float = 0.0) -> float:
            return float(col[name]) if name in col else default

        try:
            defects.append(KlarfDefect(
                int(num("DEFECTID", i + 1)), int(num("XINDEX")), int(num("YINDEX")), num("XREL"), num("YREL"),
                num("XSIZE"), num("YSIZE"), num("DEFECTAREA"), num("DSIZE"), int(num("CLASSNUMBER")),
                int(num("TEST", 1)), int(num("IMAGECOUNT"))))
        except ValueError as e:
            raise KlarfError(f"DefectList row {i + 1}: {e}") from None
    f["defects"] = tuple(defects)
    return KlarfFile(**f)


# --------------------------------------------------------------------------------------------
# Collecting a wafer's defects from die decisions
# --------------------------------------------------------------------------------------------


def die_defects(decision: Decision, die: tuple[int, int], image_wh: tuple[int, int], pitch_um: tuple[float, float],
                pixel_size_um: float | None, first_id: int = 1) -> list[KlarfDefect]:
    """KLARF defects of one die's kept boxes (positions relative to the die's lower-left corner)."""
    w_px, h_px = image_wh
    sx = pixel_size_um or pitch_um[0] / max(1, w_px)
    sy = pixel_size_um or pitch_um[1] / max(1, h_px)
    det = decision.detections
    out = []
    for j, ((x0, y0, x1, y1), cid) in enumerate(zip(det.xyxy.tolist(), det.class_id.tolist())):
        w, h = (x1 - x0) * sx, (y1 - y0) * sy
        out.append(KlarfDefect(first_id + j, die[0], die[1], round((x0 + x1) / 2 * sx, 3),
                               round((h_px - (y0 + y1) / 2) * sy, 3), round(w, 3), round(h, 3),
                               round(w * h, 3), round(max(w, h), 3), int(cid) + 1))
    return out


class WaferDefectCollector:
    """Per (lot, wafer): the dies seen and their defects, until the wafer completes (record thread only)."""

    def __init__(self, pitch_um: tuple[float, float], pixel_size_um: float | None = None) -> None:
        self.pitch_um = pitch_um
        self.pixel_size_um = pixel_size_um
        self._wafers: dict[tuple[str, str], tuple[list[tuple[int, int]], list[KlarfDefect]]] = {}

    def add(self, frame: Frame, decision: Decision) -> None:
        ctx = frame.context
        if "wafer" not in ctx or "die_x" not in ctx or "die_y" not in ctx:
            return
        try:
            die = (int(ctx["die_x"]), int(ctx["die_y"]))
        except (TypeError, ValueError):
            return
        dies, defects = self._wafers.setdefault((str(ctx.get("lot", "")), str(ctx["wafer"])), ([], []))
        dies.append(die)
        defects += die_defects(decision, die, (frame.width, frame.height), self.pitch_um, self.pixel_size_um,
                               len(defects) + 1)

    def pop(self, lot: str, wafer: str) -> tuple[list[tuple[int, int]], list[KlarfDefect]]:
        return self._wafers.pop((lot, wafer), ([], []))


def klarf_for_wafer(*, lot: str, wafer: str, dies: Iterable[tuple[int, int]], defects: Sequence[KlarfDefect],
                    classes: Sequence[str], pitch_um: tuple[float, float], diameter_mm: float, notch: str,
                    station: str, run_id: str, config_hash: str, step_id: str = "inspection",
                    t: datetime | None = None, meta: Mapping[str, Any] | None = None) -> KlarfFile:
    """A :class:`KlarfFile` for one completed wafer."""
    plan = tuple(sorted(set(dies), key=lambda d: (-d[1], d[0])))
    return KlarfFile(lot_id=lot, wafer_id=wafer, die_pitch_um=pitch_um, defects=tuple(defects),
                     classes=tuple(classes), sample_plan=plan, station=("INSPECTOR", station, run_id),
                     setup_id=config_hash[:32], step_id=step_id, device_id=str((meta or {}).get("device", "")),
                     slot=_slot(wafer), diameter_um=diameter_mm * 1000, orientation=notch.upper(),
                     result_time=(t or datetime.now(timezone.utc)).replace(microsecond=0))


def _slot(wafer: str) -> int:
    m = re.search(r"(\d+)$", wafer)
    return int(m.group(1)) if m else 0


__all__ = ["DEFECT_COLUMNS", "KlarfDefect", "KlarfError", "KlarfFile", "WaferDefectCollector", "die_defects",
           "klarf_for_wafer", "parse_klarf", "write_klarf"]
