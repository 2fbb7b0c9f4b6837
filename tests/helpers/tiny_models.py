"""Tiny hand-built ONNX models for tests that need a loadable model but no torch."""

from __future__ import annotations

from pathlib import Path


def tiny_onnx(path: Path, class_names=("scratch", "particle"), imgsz: int = 32, bias: float = 0.0,
              sigmoid: bool = False) -> Path:
    """A valid ONNX model with a YOLO-shaped output (1, 4+nc, anchors) and ultralytics-style metadata.

    ``sigmoid`` squashes every output into (0, 1), as a real YOLO head does for its class scores: with a
    large negative ``bias`` that is a model that never detects anything (the runtime refuses raw scores
    outside [0, 1])."""
    import onnx
    from onnx import TensorProto, helper

    c = 4 + len(class_names)
    if (3 * imgsz * imgsz) % c:
        raise ValueError(f"3 x {imgsz}^2 values do not reshape into {c} rows")
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, c, None])
    inits = [helper.make_tensor("bias", TensorProto.FLOAT, [1], [bias]),
             helper.make_tensor("shape", TensorProto.INT64, [3], [1, c, -1])]
    nodes = [helper.make_node("Add", ["images", "bias"], ["shifted"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["shifted"], ["squashed"]))
    nodes.append(helper.make_node("Reshape", ["squashed" if sigmoid else "shifted", "shape"], ["output0"]))
    model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"names": str(dict(enumerate(class_names))), "imgsz": str([imgsz, imgsz]), "task": "detect",
            "stride": "32"}
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, path)
    return path


def register_production(root: Path, name: str, onnx_file: Path, classes, imgsz: int) -> None:
    """One production version in a registry laid out by hand (the layout the registry reads)."""
    import json

    from inspector.runtime.model_artifact import write_manifest

    folder = root / name / "1"
    folder.mkdir(parents=True)
    onnx_file.replace(folder / "model.onnx")
    sha = json.loads(write_manifest(folder / "model.onnx", name, "1", classes, imgsz).read_text())["sha256"]
    (root / "index.json").write_text(json.dumps({"schema": 1, "models": {name: {
        "versions": {"1": {"stage": "production", "sha256": sha, "path": f"{name}/1"}},
        "production_history": ["1"]}}}))
