"""Write a YOLO-format detection dataset (hat, vest, worker) from the synthetic site camera.

Layout written under ``out``::

    images/train/*.jpg  images/val/*.jpg      JPEG (quality 90, like a camera stream), BGR frames
    labels/train/*.txt  labels/val/*.txt      "cls cx cy w h" normalised, 6 decimals
    data.yaml                                 path (absolute), train, val, nc, names
    manifest.json                             seed, generator version, scenes, counts, content hash

Each scene is one camera (its own seed: site, occluders, people) sampled every ``stride`` frames.
The split is by scene, never by frame: val scenes come after the train scenes, so no val frame has
a near-duplicate neighbour in train. Labels: a worker when at least ``MIN_WORKER_VISIBILITY`` of its
box shows (box = its visible extent), its hat / vest when worn and at least half of it shows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.capture.synthetic_site import CLASS_NAMES, GENERATOR_VERSION, SiteTruth, SyntheticSiteCamera
from inspector.util.progress import NO_PROGRESS, Progress
from training import yolo

MIN_WORKER_VISIBILITY = 0.2
MIN_PART_VISIBILITY = 0.5
MIN_BOX_PX = 3.0
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 90]
FPS = 10.0

_Job = tuple[str, int, int]  # split, scene, frame index


def scene_params(seed: int, scene: int, width: int, height: int, frames_per_scene: int, stride: int
                 ) -> dict[str, Any]:
    """Keyword arguments of scene ``scene``'s camera: crowding, occluders and PPE share vary per scene."""
    rng = np.random.default_rng([seed, 5, scene])
    return {
        "camera": f"scene{scene:04d}", "seed": int(seed) * 100_000 + scene, "width": width, "height": height,
        "fps": FPS, "duration_s": frames_per_scene * stride / FPS + 1.0,
        "workers": int(rng.integers(2, 11)), "occluders": int(rng.integers(0, 5)),
        "p_no_hat": float(rng.uniform(0.2, 0.5)), "p_no_vest": float(rng.uniform(0.2, 0.5)),
    }


def yolo_lines(truth: SiteTruth, width: int, height: int) -> list[str]:
    """Label lines of one frame (see the module doc for what is labelled)."""
    det = truth.detections(MIN_WORKER_VISIBILITY, MIN_PART_VISIBILITY)
    lines = []
    for box, c in zip(det.xyxy.tolist(), det.class_id.tolist()):
        if box[2] - box[0] >= MIN_BOX_PX and box[3] - box[1] >= MIN_BOX_PX:
            lines.append(yolo.format_label_line(c, box, width, height))
    return lines


_WORKER: dict[str, Any] = {}


def _worker_init(out: str, seed: int, width: int, height: int, frames_per_scene: int, stride: int) -> None:
    cv2.setNumThreads(1)  # parallelism comes from the processes
    _WORKER.update(out=Path(out), seed=seed, size=(width, height), frames=frames_per_scene, stride=stride, cams={})


def _render_job(job: _Job) -> tuple[str, int, list[int]]:
    split, scene, i = job
    cams: dict[int, SyntheticSiteCamera] = _WORKER["cams"]
    cam = cams.get(scene)
    if cam is None:
        cams.clear()  # jobs arrive scene by scene: keep one camera per process
        w, h = _WORKER["size"]
        cam = cams[scene] = SyntheticSiteCamera(**scene_params(_WORKER["seed"], scene, w, h, _WORKER["frames"],
                                                                _WORKER["stride"]))
    image, truth = cam.render_with_truth(i)
    name = f"{cam.camera}-f{i:05d}"
    out: Path = _WORKER["out"]
    ok, buf = cv2.imencode(".jpg", image, _JPEG)
    if not ok:
        raise OSError(f"could not encode {name}")
    (out / "images" / split / f"{name}.jpg").write_bytes(buf.tobytes())
    lines = yolo_lines(truth, image.shape[1], image.shape[0])
    (out / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return split, scene, [int(line.split()[0]) for line in lines]


def _run(jobs: list[_Job], init: tuple[Any, ...], workers: int) -> Iterator[tuple[str, int, list[int]]]:
    if workers <= 1 or len(jobs) < 32:
        _worker_init(*init)
        yield from map(_render_job, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=init) as pool:
        yield from pool.map(_render_job, jobs, chunksize=8)


def write_site_dataset(out: Path, images: int, seed: int, *, width: int = 960, height: int = 540,
                       val_fraction: float = 0.2, frames_per_scene: int = 20, stride: int = 15,
                       workers: int | None = None, progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Render ``images`` frames of synthetic site scenes into a YOLO dataset at ``out``; a summary back.

    The same arguments give byte-identical files. ``stride`` frames (at 10 fps) separate the frames
    taken from one scene.
    """
    if images < 1:
        raise ValueError(f"write_site_dataset: images must be >= 1, got {images}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"write_site_dataset: val_fraction must be in [0, 1), got {val_fraction}")
    if frames_per_scene < 1 or stride < 1:
        raise ValueError("write_site_dataset: frames_per_scene and stride must be >= 1")
    out = Path(out)
    n_val = round(images * val_fraction)
    if val_fraction > 0 and images >= 2:
        n_val = min(max(n_val, 1), images - 1)  # both splits non-empty: ultralytics needs a val set
    n_train = images - n_val
    jobs: list[_Job] = []
    scene = 0
    for split, n in (("train", n_train), ("val", n_val)):
        k = 0
        while k < n:
            for j in range(min(frames_per_scene, n - k)):
                jobs.append((split, scene, j * stride))
            k += frames_per_scene
            scene += 1
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    counts = {sp: dict.fromkeys(CLASS_NAMES, 0) for sp in ("train", "val")}
    n_img = {"train": 0, "val": 0}
    scenes: dict[str, set[int]] = {"train": set(), "val": set()}
    init = (str(out), int(seed), int(width), int(height), int(frames_per_scene), int(stride))
    with progress.stage("synth", total=images, unit="img") as stage:
        for split, sc, classes in _run(jobs, init, workers or os.cpu_count() or 1):
            n_img[split] += 1
            scenes[split].add(sc)
            for c in classes:
                counts[split][CLASS_NAMES[c]] += 1
            stage.advance()
    elapsed = time.perf_counter() - t0

    yaml_path = yolo.write_data_yaml(out, CLASS_NAMES, ("train", "val"))
    manifest = {
        "generator": "inspector.capture.synthetic_site",
        "generator_version": GENERATOR_VERSION,
        "domain": "site",
        "seed": int(seed),
        "width": int(width), "height": int(height),
        "val_fraction": float(val_fraction),
        "frames_per_scene": int(frames_per_scene), "stride": int(stride), "fps": FPS,
        "split_by": "scene",
        "scenes": {sp: sorted(s) for sp, s in scenes.items()},
        "labels": {"min_worker_visibility": MIN_WORKER_VISIBILITY, "min_part_visibility": MIN_PART_VISIBILITY,
                   "worker_box": "visible extent"},
        "names": list(CLASS_NAMES),
        "images": n_img,
        "boxes": counts,
        # same definition as `inspector-train dataset`, so evaluations and the registry name this set alike
        "content_hash": yolo.content_hash(out, CLASS_NAMES),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {
        "out": str(out.resolve()), "data_yaml": str(yaml_path.resolve()), "images": n_img, "boxes": counts,
        "scenes": {sp: len(s) for sp, s in scenes.items()}, "seconds": round(elapsed, 2),
        "content_hash": manifest["content_hash"],
    }


__all__ = ["write_site_dataset", "scene_params", "yolo_lines", "MIN_WORKER_VISIBILITY", "MIN_PART_VISIBILITY"]
