"""The PDF opened by a real reader: text, images, page count; and no head leaves unredacted."""

import io
from datetime import date

import cv2
import numpy as np
import pytest
from pypdf import PdfReader

from inspector.reports import Period, build_incident_report, build_period_report
from inspector.reports.pdf import layout_pdf
from inspector.store.db import open_db
from tests.reports.conftest import HEAD, frame_image


@pytest.fixture
def conn(site_store):
    c = open_db(site_store, create=False)
    yield c
    c.close()


def _xobject_images(page) -> list:
    """The page's image XObjects, read without ``page.images``: that goes through PIL.Image.open,
    which ultralytics (imported by other tests in this process) replaces with a narrower signature."""
    xobjects = page.get("/Resources", {}).get("/XObject", {})
    return [o for o in (v.get_object() for v in xobjects.values()) if o.get("/Subtype") == "/Image"]


def _images(page) -> list[np.ndarray]:
    out = []
    for im in _xobject_images(page):
        if im.get("/Filter") != "/DCTDecode":  # evidence frames are JPEG; charts are PNG
            continue
        arr = cv2.imdecode(np.frombuffer(im.get_data(), np.uint8), cv2.IMREAD_COLOR)
        if arr is not None and arr.shape[:2] == (270, 480):  # evidence frames (charts have other sizes)
            out.append(arr)
    return out


def test_period_pdf_has_summary_then_one_page_per_incident(conn, site_store):
    report = build_period_report(conn, Period.days(date(2026, 12, 1), date(2026, 12, 7)), data_dir=site_store.parent,
                                 generated_by="sam")
    laid = layout_pdf(report)
    reader = PdfReader(io.BytesIO(laid.data))
    assert len(reader.pages) == laid.pages == laid.summary_pages + 3
    first = reader.pages[0].extract_text()
    for text in ("Site safety incident report", "site-1", "2026-12-01 .. 2026-12-07", "sam", report.content_sha256):
        assert text in first
    assert reader.metadata.author == "sam" and report.content_sha256 in reader.metadata["/Keywords"]
    assert len(_xobject_images(reader.pages[0])) >= 3  # the charts
    for i, n in enumerate((1, 2, 3)):
        page = reader.pages[laid.summary_pages + i]
        assert f"Incident #{n}" in page.extract_text()
        assert len(_images(page)) >= 1  # first, worst, last: one image here (the same frame, stored once)
    assert "spoke to the worker" in reader.pages[laid.summary_pages].extract_text()


def test_no_head_pixel_leaves_unredacted(conn, site_store):
    report = build_incident_report(conn, 1, data_dir=site_store.parent, generated_by="sam")
    laid = layout_pdf(report)
    reader = PdfReader(io.BytesIO(laid.data))
    assert len(reader.pages) == 2 and "OSHA 301" in reader.pages[0].extract_text()
    original = frame_image().astype(np.float32)
    x0, y0, x1, y1 = HEAD
    shots = _images(reader.pages[1])
    assert shots
    for shot in shots:
        head, orig_head = shot[y0:y1, x0:x1].astype(np.float32), original[y0:y1, x0:x1]
        # the head's detail is gone (pixelated): far from the original there, close to it elsewhere
        assert np.abs(head - orig_head).mean() > 20
        assert np.abs(shot[240:, 300:].astype(np.float32) - original[240:, 300:]).mean() < 4


def test_a_frame_without_person_boxes_is_blurred_whole(conn, site_store):
    conn.execute("DROP TRIGGER IF EXISTS detections_no_delete")
    conn.execute("DELETE FROM detections")
    report = build_incident_report(conn, 1, data_dir=site_store.parent, generated_by="sam")
    text = PdfReader(io.BytesIO(layout_pdf(report).data)).pages[1].extract_text()
    assert "blurred whole" in text
