"""Fault case ``fuzz``: fuzzed configs, images and label files (hypothesis); every input either works
or is refused with the documented error that names the file (and field or line), never another
exception, never a silent pass.

Three parts, each a hypothesis search whose examples are counted instead of stopping at the first
failure (``offered``: inputs tried; ``recorded``: handled as documented; ``lost``: anything else):

- ``config``: a valid station config, mutated structurally (keys removed, values replaced by other
  types, NaN / infinities, huge or negative numbers, unknown keys, wrong nesting) or as text
  (bytes inserted, deleted, replaced, truncated). ``load_config`` must return a config whose
  ``config_hash`` can be computed, or raise ``ConfigError`` whose every issue names the file, and
  a field path for a mutation that left valid YAML.
- ``image``: PNG / JPEG bytes truncated, bit-flipped, zeroed, spliced, garbage, empty, with a
  header claiming a huge size (checked from the header before decoding). ``read_image`` must
  return an image or raise ``ImageDecodeError``. Then a real station replays them all through a
  folder source (inspection flow): every file must get exactly one decision, an unreadable one
  NOT_INSPECTED or ERROR with a reason naming the file, never a verdict (the silent pass).
  (#15 point 5: until folder sources record unreadable files, they are skipped and counted:
  ``lost``.)
- ``labels``: YOLO label files of fuzzed lines (wrong field counts, non-numbers, NaN / inf, class
  ids out of range, polygons, non-UTF-8 bytes). ``training.yolo.read_label_file`` must return
  boxes with finite coordinates or raise ``DatasetError`` naming ``file:line``; the importer
  (``read_yolo``) must report every refused line as an issue with the file and line, never raise
  anything but ``DatasetError`` / ``ValueError`` with the file.

``time_to_detect_s``: for the station replay, seconds from the start until the first unreadable
file had its record. Self-test breakages (``unsafe``): ``image-silent-pass`` (an unreadable file
becomes a black image that is judged), ``config-crash`` (the loader raises ``KeyError`` on a
missing section), ``label-nan`` (a NaN coordinate is accepted).
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.faults_common import CaseResult, build_station, check_size, check_unsafe, station_files

NAME = "fuzz"
UNSAFE = ("image-silent-pass", "config-crash", "label-nan")
EXAMPLES = {"small": {"config": 40, "image": 40, "labels": 40, "station_files": 12},
            "default": {"config": 1500, "image": 1000, "labels": 1500, "station_files": 200}}

BASE_CONFIG = {
    "version": 1,
    "station": {"id": "fuzz", "name": "Fuzz", "domain": "wafer"},
    "wafer": {"diameter_mm": 150, "die_pitch_x_mm": 25, "die_pitch_y_mm": 25, "edge_exclusion_mm": 3},
    "pixel_size_um": 260.4,
    "sources": [{"type": "synthetic_wafer", "id": "synthetic", "seed": 1, "lots": 2, "wafers_per_lot": 3,
                 "die_px": 64, "defect_rate": 0.2}],
    "models": [{"name": "tiny", "registry": "tiny", "imgsz": 64, "class_names": ["particle", "scratch"],
                "conf": 0.25, "max_det": 5, "providers": ["cpu"]}],
    "rules": [{"id": "any-defect", "type": "any_defect", "min_score": 0.6, "verdict": "fail"},
              {"id": "th", "type": "class_threshold", "thresholds": {"scratch": 0.4}, "default": 0.3}],
    "wafer_rules": [{"id": "frac", "type": "defect_die_fraction", "max_fraction": 0.5, "verdict": "fail"}],
    "flow": {"mode": "inspection", "queue_size": 8, "batch_size": 2},
    "storage": {"store_images": "all", "image_format": "png"},
}


def _settings(n: int, seed: int) -> Any:
    from hypothesis import HealthCheck, Phase, settings

    return settings(max_examples=n, deadline=None, database=None, print_blob=False,
                    suppress_health_check=list(HealthCheck), phases=[Phase.generate])


def _run_given(strategy: Any, n: int, seed: int, body: Any) -> None:
    """Run ``body`` on ``n`` examples of ``strategy`` (it records; it never raises)."""
    from hypothesis import given, seed as hseed

    @hseed(seed)
    @_settings(n, seed)
    @given(strategy)
    def prop(x: Any) -> None:
        body(x)

    prop()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging

    root = logging.getLogger("inspector")
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(level)


# --------------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------------


def _config_strategies() -> Any:
    from hypothesis import strategies as st

    odd = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.integers(), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
                    st.sampled_from([float("nan"), float("inf"), -1, 0, 10**30, "", "../../etc", "\x00"]))
    path = st.lists(st.integers(0, 50), min_size=1, max_size=4)
    structural = st.tuples(st.just("struct"), st.lists(st.tuples(st.sampled_from(["set", "del", "add"]), path, odd),
                                                     min_size=1, max_size=4))
    textual = st.tuples(st.just("text"), st.lists(st.tuples(st.sampled_from(["ins", "del", "rep", "cut"]),
                                                            st.integers(0, 10**6), st.binary(max_size=4)),
                                                  min_size=1, max_size=4))
    raw = st.tuples(st.just("raw"), st.binary(max_size=200))
    return st.one_of(structural, structural, textual, raw)


def _mutate(data: Any, ops: list[tuple[str, list[int], Any]]) -> Any:
    import copy

    data = copy.deepcopy(data)
    for op, path, value in ops:
        node = data
        for step in path[:-1]:
            if isinstance(node, dict) and node:
                node = node[list(node)[step % len(node)]]
            elif isinstance(node, list) and node:
                node = node[step % len(node)]
            else:
                break
        last = path[-1]
        if isinstance(node, dict):
            keys = list(node)
            if op == "add" or not keys:
                node[f"extra_{last}"] = value
            elif op == "del":
                node.pop(keys[last % len(keys)])
            else:
                node[keys[last % len(keys)]] = value
        elif isinstance(node, list):
            if op == "add" or not node:
                node.append(value)
            elif op == "del":
                node.pop(last % len(node))
            else:
                node[last % len(node)] = value
    return data


def _fuzz_configs(n: int, seed: int, workdir: Path, unsafe: str | None, res: CaseResult) -> dict[str, Any]:
    import yaml

    from inspector.config import ConfigError, config_hash, load_config

    counts = {"offered": 0, "loaded": 0, "refused": 0, "bad": 0}
    base_text = yaml.safe_dump(BASE_CONFIG, sort_keys=False)
    path = workdir / "fuzzed.yaml"

    def load(p: Path) -> Any:
        if unsafe == "config-crash":  # self-test: a loader that indexes a section it never checked
            data = yaml.safe_load(p.read_bytes()) or {}
            if isinstance(data, dict):
                _ = data["storage"]["image_format"]
        return load_config(p)

    def body(example: Any) -> None:
        kind, spec = example
        if kind == "struct":
            mutated = _mutate(BASE_CONFIG, spec)
            try:
                text = yaml.safe_dump(mutated, sort_keys=False, allow_unicode=True).encode("utf-8", "surrogatepass")
            except Exception:  # noqa: BLE001 - not representable as YAML: nothing to try
                return
        elif kind == "text":
            b = bytearray(base_text.encode())
            for op, pos, chunk in spec:
                pos %= max(1, len(b))
                if op == "ins":
                    b[pos:pos] = chunk
                elif op == "del":
                    del b[pos:pos + len(chunk) + 1]
                elif op == "rep":
                    b[pos:pos + len(chunk)] = chunk
                else:
                    del b[pos:]
            text = bytes(b)
        else:
            text = spec
        path.write_bytes(text)
        counts["offered"] += 1
        try:
            cfg = load(path)
            config_hash(cfg)  # a loaded config must also hash (canonical JSON of every value)
            counts["loaded"] += 1
        except ConfigError as e:
            problems = []
            if not e.errors:
                problems.append("ConfigError without issues")
            if any(i.file != str(path) for i in e.errors):
                problems.append(f"an issue names another file: {[i.file for i in e.errors][:3]}")
            if any(not i.message for i in e.errors):
                problems.append("an issue without a message")
            valid_yaml_mapping = False
            try:
                valid_yaml_mapping = isinstance(yaml.safe_load(text), dict)
            except Exception:  # noqa: BLE001
                pass
            if kind == "struct" and valid_yaml_mapping and not any(i.path for i in e.errors):
                problems.append(f"no issue names a field: {e}")
            if problems:
                counts["bad"] += 1
                res.fail(f"config ({kind}): {'; '.join(problems)}")
            else:
                counts["refused"] += 1
        except Exception as e:  # noqa: BLE001 - the finding
            counts["bad"] += 1
            res.fail(f"config ({kind}): {type(e).__name__}: {str(e)[:160]} for {text[:120]!r}")

    _run_given(_config_strategies(), n, seed, body)
    return counts


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height`` (8-bit grey) but holds one row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * min(width, 4096))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _seed_images() -> list[bytes]:
    import cv2

    rng = np.random.default_rng(0)
    out = []
    for shape in ((24, 32), (20, 20, 3), (16, 40, 4)):
        img = rng.integers(0, 255, shape, np.uint8)
        out.append(cv2.imencode(".png", img)[1].tobytes())
        if len(shape) == 2 or shape[2] == 3:
            out.append(cv2.imencode(".jpg", img)[1].tobytes())
    out.append(cv2.imencode(".png", rng.integers(0, 65535, (12, 12), np.uint16))[1].tobytes())
    return out


def _image_strategy() -> Any:
    from hypothesis import strategies as st

    seeds = _seed_images()
    mutation = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8)),
        st.tuples(st.just("zero"), st.floats(0, 1), st.integers(1, 64)),
        st.tuples(st.just("splice"), st.floats(0, 1), st.binary(min_size=1, max_size=32)),
        st.tuples(st.just("keep-tail"), st.floats(0, 1)),  # damage inside, the end marker intact
    )
    mutated = st.tuples(st.just("mutated"), st.sampled_from(range(len(seeds))), mutation)
    return st.one_of(mutated, mutated, mutated, st.tuples(st.just("garbage"), st.binary(max_size=300)),
                     st.tuples(st.just("huge"), st.tuples(st.integers(20_000, 60_000), st.integers(20_000, 60_000))),
                     st.just(("empty", None))), seeds


def _make_image(example: Any, seeds: list[bytes]) -> bytes:
    kind, *rest = example
    if kind == "garbage":
        return rest[0]
    if kind == "empty":
        return b""
    if kind == "huge":
        return png_claiming(*rest[0])
    i, (op, *args) = rest
    b = bytearray(seeds[i])
    n = len(b)
    if op == "truncate":
        return bytes(b[: int(args[0] * n)])
    if op == "flip":
        for where, bit in args[0]:
            j = min(n - 1, 8 + int(where * (n - 8)))
            b[j] ^= 1 << bit
    elif op == "zero":
        j = int(args[0] * n)
        b[j:j + args[1]] = bytes(len(b[j:j + args[1]]))
    elif op == "splice":
        j = int(args[0] * n)
        b[j:j] = args[1]
    else:  # keep-tail: garble the middle only
        j = 8 + int(args[0] * max(1, n - 48))
        b[j:j + 16] = b"\xa5" * len(b[j:j + 16])
    return bytes(b)


def _fuzz_images(n: int, n_files: int, seed: int, workdir: Path, unsafe: str | None, res: CaseResult
                 ) -> dict[str, Any]:
    from inspector.capture import folder as folder_mod
    from inspector.capture.folder import ImageDecodeError, read_image

    counts: dict[str, Any] = {"offered": 0, "decoded": 0, "refused": 0, "bad": 0}
    strategy, seeds = _image_strategy()
    files = workdir / "images"
    files.mkdir(parents=True, exist_ok=True)
    made: list[bytes] = []

    check_header = getattr(folder_mod, "check_image_size", None)
    probe = workdir / "probe.img"

    def body(example: Any) -> None:
        data = _make_image(example, seeds)
        counts["offered"] += 1
        try:
            if check_header is not None:  # the header check the folder source runs first (#15 point 3)
                probe.write_bytes(data)
                check_header(probe, 100.0)
            img = read_image(data)
            if not isinstance(img, np.ndarray) or img.size == 0:
                raise TypeError(f"read_image returned {type(img).__name__}")
            counts["decoded"] += 1
        except ImageDecodeError as e:
            if not str(e):
                counts["bad"] += 1
                res.fail("image: ImageDecodeError without a reason")
            else:
                counts["refused"] += 1
        except Exception as e:  # noqa: BLE001 - the finding
            counts["bad"] += 1
            res.fail(f"image ({example[0]}): {type(e).__name__}: {str(e)[:160]}")
        if len(made) < n_files and example[0] != "huge":
            made.append(data)

    _run_given(strategy, n, seed, body)
    # Make sure the replay holds each kind of trouble and some good images.
    made += [b"", b"not an image at all", seeds[0][: len(seeds[0]) // 2], seeds[1][:-40], png_claiming(12_000, 12_000)]
    made += seeds[:2]
    for i, data in enumerate(made):
        (files / f"f{i:04d}.png").write_bytes(data)

    # The station replays them all.
    unreadable = unreadable_files(files)  # before any self-test breakage is put in
    real_read, real_check = folder_mod.read_image, getattr(folder_mod, "check_image_size", None)
    if unsafe == "image-silent-pass":
        def lenient(data: bytes) -> np.ndarray:
            try:
                return real_read(data)
            except ImageDecodeError:
                return np.zeros((32, 32), np.uint8)

        def lenient_header(path: Path, limit: Any) -> Any:
            try:
                return real_check(path, limit)
            except ImageDecodeError as e:
                if type(e).__name__ == "ImageTooLargeError":
                    raise
                return (32, 32)

        folder_mod.read_image = lenient  # type: ignore[assignment]
        if real_check is not None:
            folder_mod.check_image_size = lenient_header  # type: ignore[assignment]
    try:
        station_counts = _replay(files, workdir / "station", res, unreadable)
    finally:
        folder_mod.read_image = real_read  # type: ignore[assignment]
        if real_check is not None:
            folder_mod.check_image_size = real_check  # type: ignore[assignment]
    counts["station"] = station_counts
    return counts


def unreadable_files(files: Path) -> set[str]:
    """The files a station cannot judge: not decodable, or above the 100 MP header limit (#15 point 3)."""
    from inspector.capture.folder import ImageDecodeError, read_image

    out = set()
    for p in files.iterdir():
        data = p.read_bytes()
        try:
            read_image(data)
        except ImageDecodeError:
            out.add(p.name)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and _png_pixels(data) > 100e6:
            out.add(p.name)
    return out


def _replay(files: Path, workdir: Path, res: CaseResult, unreadable: set[str]) -> dict[str, Any]:
    cfg, reg, data = station_files(workdir, f"  - {{type: folder, id: fuzz, path: '{files}', pattern: '*.png'}}",
                                   batch=2)
    first_bad_t: list[float] = []
    names = sorted(p.name for p in files.iterdir())
    t0 = time.monotonic()

    def on_ack(frame_id: str) -> None:
        if not first_bad_t and any(frame_id.endswith(n) for n in unreadable):
            first_bad_t.append(time.monotonic() - t0)

    st = build_station(cfg, reg, data, on_ack=on_ack)
    with _quiet():
        summary = st.run()
    out = {"files": len(names), "unreadable": len(unreadable), "decisions": 0, "missing": [], "silent_pass": [],
           "no_reason": []}
    conn = __import__("sqlite3").connect(str(st.db_path))
    try:
        rows = conn.execute("SELECT f.context, d.verdict, d.reasons, d.error FROM frames f JOIN decisions d"
                            " ON d.frame_id = f.id WHERE f.run_id = ?", (st.run_id,)).fetchall()
    finally:
        conn.close()
    seen: dict[str, list[tuple[str, str]]] = {}
    for ctx, verdict, reasons, error in rows:
        file = json.loads(ctx).get("file") or ""
        seen.setdefault(file, []).append((verdict, f"{reasons} {error or ''}"))
    out["decisions"] = len(rows)
    out["doubled"] = sum(len(v) - 1 for v in seen.values() if len(v) > 1)
    for name in names:
        got = seen.get(name)
        if not got:
            out["missing"].append(name)
        elif name in unreadable:
            verdict, why = got[0]
            if verdict not in ("not_inspected", "error"):
                out["silent_pass"].append(f"{name}: {verdict}")
            elif name not in why:
                out["no_reason"].append(name)
    out["time_to_first_unreadable_record_s"] = first_bad_t[0] if first_bad_t else None
    out["corrupt_counted"] = summary.get("corrupt")
    return out


def _png_pixels(data: bytes) -> float:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return 0.0
    w, h = struct.unpack(">II", data[16:24])
    return float(w) * float(h)


# --------------------------------------------------------------------------------------------
# label files
# --------------------------------------------------------------------------------------------


def _label_strategy() -> Any:
    from hypothesis import strategies as st

    num = st.one_of(st.floats(0, 1).map(lambda v: f"{v:.6f}"), st.floats(allow_nan=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "0x10", "1_0", "½", "", "NaN", "+.5"]),
                    st.integers(-3, 5).map(str), st.text(max_size=4))
    special = st.sampled_from(["nan", "inf", "-inf", "1e309", "NaN", "0.5", "0.25", "-0.1", "1.5", "0"])
    line = st.one_of(st.lists(num, min_size=0, max_size=9).map(" ".join),
                     st.tuples(st.integers(0, 2), st.lists(special, min_size=4, max_size=4))
                     .map(lambda t: " ".join([str(t[0]), *t[1]])),
                     st.tuples(st.integers(-1, 4), st.lists(st.floats(0, 1), min_size=4, max_size=4))
                     .map(lambda t: " ".join([str(t[0]), *(f"{v:.4f}" for v in t[1])])))
    text = st.lists(line, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass"))
    return st.one_of(text, text, text, st.binary(max_size=80))


def _fuzz_labels(n: int, seed: int, workdir: Path, unsafe: str | None, res: CaseResult) -> dict[str, Any]:
    import cv2

    from training import yolo
    from training.importers.from_yolo import read_yolo
    from training.yolo import DatasetError, read_label_file

    counts = {"offered": 0, "read": 0, "refused": 0, "bad": 0, "importer_issues": 0}
    root = workdir / "labels-ds"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((40, 50), np.uint8))
    label = root / "labels" / "a.txt"
    real_parse = yolo.parse_label_text

    def nan_ok(text: str, nc: int) -> list[Any]:  # self-test: a parser that garbles coordinates into NaN
        return [yolo.LabelLine(item.line, item.class_id, (float("nan"),) * 4) if isinstance(item, yolo.LabelLine)
                else item for item in real_parse(text, nc)]

    if unsafe == "label-nan":
        yolo.parse_label_text = nan_ok  # type: ignore[assignment]

    def body(data: bytes) -> None:
        label.write_bytes(data)
        counts["offered"] += 1
        try:
            det = read_label_file(label, 50, 40, 3)
            boxes = np.asarray(det.xyxy, dtype=np.float64)
            if boxes.size and not np.isfinite(boxes).all():
                counts["bad"] += 1
                res.fail(f"labels: non-finite box accepted from {data[:80]!r}")
                return
            counts["read"] += 1
        except DatasetError as e:
            msg = str(e)
            import re

            if not (msg.startswith(f"{label}:") and (re.match(rf"{re.escape(str(label))}:\d+: ", msg)
                                                      or "unreadable label file" in msg)):
                counts["bad"] += 1
                res.fail(f"labels: error does not name file and line: {msg[:160]}")
                return
            counts["refused"] += 1
        except Exception as e:  # noqa: BLE001 - the finding
            counts["bad"] += 1
            res.fail(f"labels: {type(e).__name__}: {str(e)[:160]} for {data[:80]!r}")
            return
        try:  # the importer reads the same file: every refused line an issue with file and line
            build = read_yolo(root, names=["a", "b", "c"])
            for issue in build.issues:
                if Path(issue.file).name not in ("a.txt", "a.png"):
                    counts["bad"] += 1
                    res.fail(f"labels importer: issue names {issue.file}")
            for s in build.samples:
                if not np.isfinite(np.asarray(s.xyxy, dtype=np.float64)).all():
                    counts["bad"] += 1
                    res.fail("labels importer: a non-finite box was kept")
            counts["importer_issues"] += len(build.issues)
        except (DatasetError, ValueError) as e:
            if str(label) not in str(e) and str(root) not in str(e):
                counts["bad"] += 1
                res.fail(f"labels importer: error names no file: {str(e)[:160]}")
        except Exception as e:  # noqa: BLE001
            counts["bad"] += 1
            res.fail(f"labels importer: {type(e).__name__}: {str(e)[:160]}")

    try:
        # Known examples first, whatever hypothesis draws: one valid line (a garbling parser must be
        # caught on it) and the non-finite coordinates a careless parser accepts.
        for known in (b"0 0.5 0.5 0.2 0.2\n", b"0 nan 0.5 0.1 0.1\n", b"1 0.5 inf 0.1 0.1\n"):
            body(known)
        _run_given(_label_strategy(), n, seed, body)
    finally:
        yolo.parse_label_text = real_parse  # type: ignore[assignment]
    return counts


# --------------------------------------------------------------------------------------------


PARTS = ("config", "image", "labels")


def run(size: str = "default", *, seed: int = 0, unsafe: str | None = None, parts: tuple[str, ...] = PARTS,
        examples: int | None = None) -> CaseResult:
    check_size(size)
    check_unsafe(unsafe, UNSAFE, NAME)
    ex = dict(EXAMPLES[size])
    if examples is not None:
        ex.update(config=examples, image=examples, labels=examples, station_files=min(ex["station_files"], examples))
    empty_img = {"offered": 0, "decoded": 0, "refused": 0, "bad": 0,
                 "station": {"files": 0, "unreadable": 0, "decisions": 0, "missing": [], "silent_pass": [],
                             "no_reason": [], "doubled": 0, "time_to_first_unreadable_record_s": None}}
    empty = {"offered": 0, "bad": 0}
    res = CaseResult(NAME)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="inspector-faults-fuzz-") as tmp:
        work = Path(tmp)
        with _quiet():
            cfg = _fuzz_configs(ex["config"], seed, work, unsafe, res) if "config" in parts else dict(empty)
            img = (_fuzz_images(ex["image"], ex["station_files"], seed, work, unsafe, res) if "image" in parts
                   else empty_img)
            lab = _fuzz_labels(ex["labels"], seed, work, unsafe, res) if "labels" in parts else dict(empty)
    stn = img["station"]
    res.offered = cfg["offered"] + img["offered"] + lab["offered"] + stn["files"]
    res.lost = cfg["bad"] + img["bad"] + lab["bad"] + len(stn["missing"]) + len(stn["silent_pass"])
    res.recorded = res.offered - res.lost
    res.doubled = stn["doubled"]
    res.time_to_detect_s = stn["time_to_first_unreadable_record_s"]
    for what in ("missing", "silent_pass", "no_reason"):
        if stn[what]:
            res.fail(f"station replay: {len(stn[what])} unreadable file(s) {what.replace('_', ' ')}: {stn[what][:5]}")
    if stn["missing"]:
        res.depends_on = "#15 point 5: folder sources record unreadable images as NOT_INSPECTED"
    res.details = {"config": cfg, "image": {k: v for k, v in img.items() if k != "station"},
                   "station_replay": {k: (v[:8] if isinstance(v, list) else v) for k, v in stn.items()},
                   "labels": lab}
    res.notes = (f"hypothesis (seed {seed}): {cfg['offered']} configs, {img['offered']} images "
                 f"(+ a real station replaying {stn['files']} of them), {lab['offered']} label files")
    return res.finish(t0)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small").as_dict(), indent=1, default=str))
