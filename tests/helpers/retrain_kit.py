"""What a retraining test needs: a tiny store with confirmed reviews and a registry whose production
model is a real (untrained) yolo11n with its own weights.pt, small enough for a one-epoch run."""

from __future__ import annotations

from pathlib import Path

CLASSES = ("particle", "scratch", "residue", "pattern", "edge_chip")   # the wafer-demo config's classes
IMGSZ = 64


def confirmed_store(db: Path, images_root: Path, lots: int = 4, per_lot: int = 3) -> list[str]:
    """``lots`` x ``per_lot`` frames whose kept box (drawn in the image) an operator accepted; one group
    per lot, so the split has whole lots on each side."""
    from gui.gui_helpers import fill_store, put_image
    from helpers.sessions import logged_in

    from inspector.store import queries
    from inspector.store.db import open_db

    ids: list[str] = []
    for lot in range(lots):
        images = {i: put_image(images_root, seed=10 * lot + i) for i in range(per_lot)}
        ids += fill_store(db, per_lot, verdicts=("fail",), lot=f"L{lot}", wafer=f"W{lot}", run_id=f"run-{lot}",
                          images=images)
    conn = open_db(db)
    try:
        op1 = logged_in(conn, "operator", "op1")
        for fid in ids:
            queries.add_review(conn, fid, op1, "accept", verdict="fail")
    finally:
        conn.close()
    return ids


def production_with_weights(root: Path, work: Path, name: str = "wafer-demo", imgsz: int = IMGSZ,
                            card: dict | None = None) -> Path:
    """A registry at ``root`` whose ``name``@1 is in production with its own weights.pt; returns that .pt."""
    from training.export import export_onnx
    from training.registry import Registry
    from training.untrained import build_untrained_yolo, save_pt

    model = build_untrained_yolo(list(CLASSES), work / "build", imgsz=imgsz, seed=0)
    pt = save_pt(model, work / "production.pt")
    onnx = export_onnx(pt, work / "onnx", imgsz, name=name)
    reg = Registry(root)
    reg.register(onnx, name, list(CLASSES), imgsz, dataset_hash="ds-factory", train_config={}, parent=None,
                 metrics=None, author="qe-anna", weights_pt=pt,
                 card=card or {"purpose": "wafer defects", "limits": ["demo only"]})
    reg.promote(name, "1", "qe-anna")
    return pt


def production_without_weights(root: Path, work: Path, train_config: dict, name: str = "wafer-demo",
                               imgsz: int = 96) -> None:
    """A production version with no weights.pt (a hand-built ONNX: 3 x 96^2 values reshape into 9 rows),
    recording ``train_config``."""
    from helpers.tiny_models import tiny_onnx
    from training.registry import Registry

    work.mkdir(parents=True, exist_ok=True)
    reg = Registry(root)
    reg.register(tiny_onnx(work / "prod.onnx", CLASSES, imgsz=imgsz), name, list(CLASSES), imgsz,
                 dataset_hash="ds-factory", train_config=train_config, parent=None, metrics=None,
                 author="qe-anna", card={"purpose": "wafer defects"})
    reg.promote(name, "1", "qe-anna")
