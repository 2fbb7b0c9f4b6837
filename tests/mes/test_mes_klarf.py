"""KLARF files: write -> parse round trip, defects from die decisions, parse errors."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame
from inspector.mes.klarf import (
    KlarfDefect,
    KlarfError,
    KlarfFile,
    WaferDefectCollector,
    klarf_for_wafer,
    parse_klarf,
    write_klarf,
)

T = datetime(2026, 4, 1, 12, 30, 5, tzinfo=timezone.utc)


def test_round_trip_keeps_every_supported_field():
    k = KlarfFile(lot_id="LOT 7", wafer_id="W03", die_pitch_um=(25000.0, 20000.0),
                  defects=(KlarfDefect(1, 0, 0, 100.5, 200.25, 10.0, 5.0, 50.0, 10.0, 2),
                           KlarfDefect(2, -1, 3, 1.0, 2.0, 3.0, 4.0, 12.0, 4.0, 1, 1, 1)),
                  classes=("particle", "scratch"), sample_plan=((0, 0), (-1, 3), (1, 0)),
                  station=("INSPECTOR", "fab-1", "run-1"), setup_id="abc123", step_id="inspection",
                  device_id="DEV", slot=3, diameter_um=300000.0, orientation="DOWN", result_time=T, file_time=T)
    text = write_klarf(k)
    assert text.startswith("FileVersion 1 1;") and text.rstrip().endswith("EndOfFile;")
    back = parse_klarf(text)
    assert back == KlarfFile(**{**k.__dict__, "extra": back.extra})
    assert back.class_name(2) == "scratch" and "SummaryList" in back.extra
    assert back.extra["SummaryList"][:2] == ["1", "2"]  # test 1, two defects


def test_collector_places_defects_in_die_coordinates():
    c = WaferDefectCollector((25000.0, 25000.0), pixel_size_um=None)  # 100 px images -> 250 um / px
    det = Detections([[0, 0, 10, 20], [50, 50, 60, 60]], [0.9, 0.8], [1, 0], -1)
    for die in ((0, 0), (1, 0)):
        f = Frame(f"f{die}", "st", "cam", 0.0, T, np.zeros((100, 100), np.uint8),
                  {"lot": "L1", "wafer": "W1", "die_x": die[0], "die_y": die[1]})
        c.add(f, Decision(f.frame_id, "fail" if die == (1, 0) else "pass", (), det if die == (1, 0) else
                          Detections.empty(), "ms", "cfg", T))
    dies, defects = c.pop("L1", "W1")
    assert dies == [(0, 0), (1, 0)] and len(defects) == 2
    d = defects[0]
    assert (d.x_index, d.y_index, d.class_number) == (1, 0, 2)
    assert (d.xrel_um, d.yrel_um, d.xsize_um, d.ysize_um, d.dsize_um) == (1250.0, 22500.0, 2500.0, 5000.0, 5000.0)
    k = klarf_for_wafer(lot="L1", wafer="W1", dies=dies, defects=defects, classes=("a", "b"),
                        pitch_um=(25000.0, 25000.0), diameter_mm=300, notch="down", station="st", run_id="r",
                        config_hash="f" * 64, t=T)
    back = parse_klarf(write_klarf(k))
    assert back.slot == 1 and back.sample_plan == ((0, 0), (1, 0)) and back.defects == tuple(defects)
    assert c.pop("L1", "W1") == ([], [])


@pytest.mark.parametrize("text, words", [
    ("LotID \"L\"; DiePitch 1 1; EndOfFile;", "no WaferID"),
    ("LotID \"L\"; WaferID \"W\"; DiePitch 1; EndOfFile;", "DiePitch"),
    ("LotID \"L\"; WaferID \"W\"; DiePitch 1 1; DefectRecordSpec 3 DEFECTID XREL YREL; DefectList 1 2;",
     "not a multiple"),
])
def test_parse_errors_name_the_record(text, words):
    with pytest.raises(KlarfError, match=words):
        parse_klarf(text)
