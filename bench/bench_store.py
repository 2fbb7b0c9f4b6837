"""Sustained decisions per second the store accepts: batched commits against one durable commit per
decision (``synchronous=FULL`` both ways; every acknowledged decision is on disk).

Each decision is a realistic wafer-die record: frame row with context, 3 models x 5 boxes plus the
fused set, reasons and the audit-chain row, all in the same transaction. Images are not stored here
(their cost is the PNG encoder's, not the store's); ``--images`` adds 320 x 320 PNGs.

    python bench/bench_store.py [--decisions 3000] [--images] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.core import Decision, Detections, Frame, Reason, Verdict  # noqa: E402
from inspector.store.audit import verify  # noqa: E402
from inspector.store.db import open_db  # noqa: E402
from inspector.store.images import ImageStore  # noqa: E402
from inspector.store.writer import DecisionRecord, StoreWriter  # noqa: E402

NAMES = ("particle", "scratch", "residue", "pattern", "edge_chip")
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def records(n: int, run: str, image_px: int) -> list[DecisionRecord]:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (image_px, image_px, 3), np.uint8) if image_px else np.zeros((8, 8, 3), np.uint8)
    out = []
    for i in range(n):
        fid = f"{run}-{i:06d}"
        frame = Frame(fid, "bench", "line", float(i), T0 + timedelta(milliseconds=i), img,
                      {"lot": f"L{i // 1000}", "wafer": f"W{i // 89}", "die_x": i % 9, "die_y": i // 9 % 9})
        xy = rng.uniform(0, 300, (5, 2))
        boxes = np.hstack([xy, xy + 12])
        per_model = [Detections(boxes + m, rng.uniform(0.3, 1, 5), rng.integers(0, 5, 5), m) for m in range(3)]
        kept = Detections(boxes, rng.uniform(0.5, 1, 5), rng.integers(0, 5, 5), -1, [7] * 5)
        verdict = Verdict.FAIL if i % 10 == 0 else Verdict.PASS
        reasons = (Reason("any-defect", verdict, "particle 0.91"),) if verdict is Verdict.FAIL else ()
        dec = Decision(fid, verdict, reasons, kept, "ms-bench", "cfg-bench", T0 + timedelta(milliseconds=i, microseconds=5))
        out.append(DecisionRecord(frame, dec, per_model, run, NAMES, bool(image_px)))
    return out


def rate(db: Path, recs: list[DecisionRecord], batch_max: int, images: Path | None) -> dict:
    with StoreWriter(db, ImageStore(images) if images else None, batch_max=batch_max, batch_wait_s=0.002) as w:
        t0 = time.perf_counter()
        futures = [w.submit(r) for r in recs]
        for f in futures:
            f.result(timeout=600)
        dt = time.perf_counter() - t0
    return {"decisions": len(recs), "seconds": round(dt, 3), "decisions_per_s": round(len(recs) / dt, 1),
            "batch_max": batch_max}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=3000, help="decisions per batched run")
    ap.add_argument("--durable-decisions", type=int, default=300, help="decisions for the one-commit-each run")
    ap.add_argument("--images", action="store_true", help="also store a 320 x 320 PNG per decision")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    px = 320 if args.images else 0
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        batched = rate(t / "batched.sqlite", records(args.decisions, "b", px), 64, t / "img" if px else None)
        single = rate(t / "single.sqlite", records(args.durable_decisions, "s", px), 1, t / "img" if px else None)
        conn = open_db(t / "batched.sqlite", create=False)
        ok = verify(conn).ok
        conn.close()
    result = {"batched": batched, "per_decision_commit": single,
              "batching_gain": round(batched["decisions_per_s"] / single["decisions_per_s"], 2),
              "images": bool(px), "audit_chain_ok": ok}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"batched (<= 64 per commit): {batched['decisions_per_s']:.0f} decisions/s; "
              f"one durable commit per decision: {single['decisions_per_s']:.0f} decisions/s "
              f"({result['batching_gain']}x); audit chain ok: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
