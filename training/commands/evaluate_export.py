"""`inspector-train evaluate` and `inspector-train export`.

Register them with ``main.add_command(evaluate)`` and ``main.add_command(export)``. Heavy modules
(ultralytics, onnxruntime, matplotlib) are imported inside the commands, so ``--help`` stays fast.
With ``--json`` stdout carries exactly one JSON object; progress (``--progress``) and logs
(``--log-level``) go to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from inspector.util.clickopts import current_log_level, json_option, log_level_option, progress_option
from inspector.util.logs import setup_logging
from inspector.util.progress import Progress


def _setup_logs(verbose: bool = False) -> None:
    """stderr logging at ``--log-level``; ``--verbose`` is ``--log-level info`` unless a level was given."""
    setup_logging(current_log_level(default="") or ("info" if verbose else None))


@click.command("evaluate")
@click.argument("model")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--split", default="val", show_default=True, help="Dataset split to evaluate on (train, val, test).")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Station config whose class_threshold rules (and model conf) give the operating thresholds.")
@click.option("--thresholds", "thresholds", multiple=True, metavar="CLS=V[,CLS=V]",
              help="Operating thresholds instead of --config: CLASS=VALUE pairs (repeat or comma-separate; "
                   "'default=V' for the other classes), or one VALUE for every class. Default 0.25.")
@click.option("--no-onnx", is_flag=True,
              help="Skip the ONNX side (no export, no station-runtime run, no agreement check).")
@click.option("--imgsz", type=click.IntRange(min=32), default=None,
              help="Input size (default: the checkpoint's training size, or the ONNX manifest's).")
@click.option("--rect", is_flag=True,
              help="Run the ONNX side with the rect letterbox, as a station config with rect: true does "
                   "(models exported with --dynamic only).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for report.json and the PNG plots (default: runs/eval/<model>-<dataset>).")
@json_option
@click.option("--registry", "registry_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Registry folder for MODEL given as name or name@version "
                   "(default: $INSPECTOR_REGISTRY, else the repository's models/ folder).")
@click.option("--store-in-registry", is_flag=True,
              help="Store the evaluation with the registry version (MODEL must be a registry model); "
                   "the promotion gate compares stored evaluations.")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N images of the split (quick checks; never for promotion).")
@click.option("--verbose", "-v", is_flag=True, help="Step messages on stderr (same as --log-level info).")
@progress_option
@log_level_option
def evaluate(model: str, dataset: Path, split: str, config: Path | None, thresholds: tuple[str, ...], no_onnx: bool,
             imgsz: int | None, rect: bool, out_dir: Path | None, as_json: bool, registry_dir: Path | None,
             store_in_registry: bool, max_images: int | None, verbose: bool, progress: Progress) -> None:
    """Evaluate MODEL on DATASET: mAP, P/R/F1 at the station's thresholds, confusion, calibration.

    MODEL is a registry name (its production version), name@version, a .pt checkpoint or an .onnx
    file. DATASET is a YOLO data.yaml or dataset folder. A checkpoint is also exported to ONNX and run
    through the station's own runtime; the two must agree within 0.5 mAP50 points (a larger gap means a
    pre/post-processing bug). Plots (pr_curves.png, confusion.png, calibration.png) and report.json go
    to --out.
    """
    from inspector.runtime.model_artifact import ModelArtifactError
    from training.evaluate import EvalError, evaluate_model, format_table, parse_threshold_args
    from training.yolo import DatasetError

    _setup_logs(verbose)
    if store_in_registry and (model.endswith((".pt", ".onnx")) or Path(model).exists()):
        raise click.UsageError("--store-in-registry needs MODEL as a registry name or name@version, not a file")
    try:
        thr = parse_threshold_args(thresholds)
        result = evaluate_model(
            model, dataset, split, thresholds=thr, config=config, onnx=not no_onnx, imgsz=imgsz,
            registry_root=registry_dir, out_dir=out_dir, max_images=max_images, rect=rect, progress=progress,
        )
    except (EvalError, DatasetError, ModelArtifactError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if store_in_registry:
        from training.registry import Registry, RegistryError

        if max_images:
            raise click.UsageError("--store-in-registry with --max-images: a partial evaluation cannot be stored")
        reg = result["registry"]
        try:
            path = Registry(reg["root"]).add_eval(reg["name"], reg["version"], result)
        except RegistryError as e:
            raise click.ClickException(str(e)) from None
        result["stored_in_registry"] = str(path)
    if as_json:
        click.echo(json.dumps(result, allow_nan=False))
    else:
        click.echo(format_table(result))
        if result.get("stored_in_registry"):
            click.echo(f"stored in the registry: {result['stored_in_registry']}")
    if result.get("agree") is False:
        click.echo(f"warning: PyTorch and the station's ONNX runtime differ by {result['onnx_delta_map50']:.2f} "
                   f"mAP50 points (more than {result['max_onnx_delta_points']:g}): check pre/post-processing",
                   err=True)


@click.command("export")
@click.argument("pt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: the checkpoint's folder).")
@click.option("--imgsz", type=click.IntRange(min=32), default=None,
              help="Input size, a multiple of 32 (default: the checkpoint's training size).")
@click.option("--dynamic", is_flag=True, help="Dynamic batch and input size (default: static 1x3xHxW).")
@click.option("--name", default=None, help="Model name written in the manifest (default: the run folder name).")
@click.option("--int8", "int8", is_flag=True,
              help="Also quantize to INT8 (ONNX Runtime static, QDQ); kept only if mAP50 drops <= 1 point.")
@click.option("--data", "data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Dataset (data.yaml or folder) for INT8 calibration (train split) and the gate (val split).")
@click.option("--calib", type=click.IntRange(min=1), default=100, show_default=True,
              help="Number of calibration images for INT8.")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile"]), default="minmax", show_default=True,
              help="How INT8 activation ranges are calibrated: observed min/max, or the 99.999th percentile "
                   "(clips outliers; slower).")
@click.option("--tensorrt", is_flag=True,
              help="Also build a TensorRT engine (needs the tensorrt package and a CUDA GPU).")
@json_option
@progress_option
@log_level_option
def export(pt: Path, out_dir: Path | None, imgsz: int | None, dynamic: bool, name: str | None, int8: bool,
           data: Path | None, calib: int, calib_method: str, tensorrt: bool, as_json: bool,
           progress: Progress) -> None:
    """Export a trained checkpoint PT to ONNX with its manifest (sha256, class names, imgsz).

    Optionally quantize it to INT8, calibrated on --data's images and accepted only when the station
    runtime measures at most 1 mAP50 point lost on the val split (the speed gain is reported); and
    optionally build a TensorRT engine.
    """
    from inspector.runtime.model_artifact import ModelArtifactError, load_manifest
    from training.console import json_safe, quiet_stdout
    from training.export import ExportError, export_onnx
    from training.yolo import DatasetError

    _setup_logs()
    if int8 and data is None:
        raise click.UsageError("--int8 needs --data DATASET (calibration images and the accuracy gate)")
    if dynamic and int8:
        raise click.UsageError("--int8 quantizes a static model; leave out --dynamic")
    out = out_dir or pt.parent
    summary: dict = {}
    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        with quiet_stdout():
            onnx_path = export_onnx(pt, out, imgsz, dynamic=dynamic, name=name, progress=progress)
        m = load_manifest(onnx_path)
        summary["onnx"] = {"path": str(onnx_path), "manifest": str(m.path), "sha256": m.sha256,
                           "class_names": list(m.class_names), "imgsz": list(m.imgsz)}
        say(f"ONNX: {onnx_path} (sha256 {m.sha256[:16]}..., imgsz {m.imgsz[0]}x{m.imgsz[1]}, "
            f"{len(m.class_names)} classes); manifest {m.path}")
        if int8:
            from training.export import int8_gate, quantize_int8

            say(f"INT8: calibrating on {calib} images ({calib_method}) ...")
            q = quantize_int8(onnx_path, data, calibration_images=calib, method=calib_method, progress=progress)
            say("INT8: evaluating FP32 and INT8 through the station runtime ...")
            gate = int8_gate(onnx_path, q, data, progress=progress)
            summary["int8"] = {"path": str(q) if gate.accepted else None, **gate.to_json()}
            say(f"INT8: mAP50 FP32 {gate.fp32_map50 * 100:.2f} / INT8 {gate.int8_map50 * 100:.2f}; "
                f"median ms per image FP32 {gate.fp32_ms:.1f} / INT8 {gate.int8_ms:.1f} "
                f"(x{gate.speedup:.2f} end to end, x{gate.infer_speedup:.2f} inference only)")
            if gate.accepted:
                say(f"INT8: {gate.reason}; {q}")
            else:
                for f in (q, q.with_name(q.stem + ".manifest.json")):
                    f.unlink(missing_ok=True)
                say(f"INT8: {gate.reason}; the INT8 model was deleted")
        if tensorrt:
            from training.export import TensorRTUnavailable, export_tensorrt

            try:
                engine = export_tensorrt(onnx_path)
            except TensorRTUnavailable as e:
                if as_json:
                    click.echo(json.dumps(json_safe({**summary, "tensorrt": {"error": str(e)}})))
                raise click.ClickException(str(e)) from None
            summary["tensorrt"] = {"path": str(engine)}
            say(f"TensorRT engine: {engine}")
    except (ExportError, DatasetError, ModelArtifactError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(json_safe(summary), allow_nan=False))
    if int8 and not summary["int8"]["accepted"]:
        raise click.ClickException("INT8 model rejected by the accuracy gate (the FP32 ONNX export is kept)")


__all__ = ["evaluate", "export"]
