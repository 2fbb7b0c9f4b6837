"""Registry commands for `inspector-train`: ``models``, ``promote`` and ``rollback``.

``models`` has list, show, register, stage, events and verify.

Register them on the group with ``main.add_command(models)``, ``main.add_command(promote)`` and
``main.add_command(rollback)`` (or ``add_registry_commands(main)``). The registry module is
imported inside each command, so ``--help`` stays fast (it pulls in onnxruntime).

``--json`` (list, show, verify, promote, rollback) prints the result as JSON alone on stdout; a
failed check or a refused promotion still exits with status 1, its message on stderr.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from inspector.util.clickopts import json_option, log_level_option

if TYPE_CHECKING:  # pragma: no cover
    from training.registry import GateResult

STAGE_CHOICES = ("candidate", "shadow", "archived")


def _registry_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--registry", "registry_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Registry folder (default: $INSPECTOR_REGISTRY, else the repository's models/ folder).",
    )(f)


def _user_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--user", default=None,
                        help="Who does this, for the record (default: $INSPECTOR_USER, else the login name).")(f)


def _reason_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--reason", default="", help="Why, in a few words; kept in the event log.")(f)


def _sign_key_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--sign-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                        help="ed25519 private key (from `inspector-train keygen`, kept outside the repository, "
                             "registry and data folders): sign the manifest. Passphrase: "
                             "$INSPECTOR_SIGNING_PASSPHRASE.")(f)


def _open(registry_dir: Path | None):  # -> training.registry.Registry
    from training.registry import Registry

    return Registry(registry_dir)


@contextmanager
def _errors() -> Iterator[None]:
    """Registry errors become one clear click error (a gate refusal keeps its table)."""
    from inspector.runtime.model_artifact import ModelArtifactError
    from training.registry import RegistryError

    try:
        yield
    except (RegistryError, ModelArtifactError) as e:
        raise click.ClickException(str(e)) from None


def _load_mapping(path: Path, what: str) -> dict[str, Any]:
    """A JSON or YAML file holding one mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise click.ClickException(f"cannot read {what} {path}: {e}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # yaml.YAMLError, json.JSONDecodeError
        raise click.ClickException(f"{what} {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{what} {path}: expected a mapping at the top level")
    return data


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


# --- models --------------------------------------------------------------------------------------
@click.group("models")
@log_level_option
def models() -> None:
    """Manage the model registry: list, show, register, re-stage and verify model versions.

    The station loads models only from this registry (ONNX files checked by sha256).
    """


@models.command("list")
@click.option("--name", default=None, help="Only the versions of this model.")
@json_option
@_registry_option
def list_cmd(name: str | None, as_json: bool, registry_dir: Path | None) -> None:
    """List every model version: name, version, stage, created, author and mAP50."""
    reg = _open(registry_dir)
    with _errors():
        rows = reg.list(name)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo(f"no models in the registry at {reg.root}")
        return
    cols = ("name", "version", "stage", "created", "author", "map50")
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


@models.command("show")
@click.argument("spec", metavar="NAME[@VERSION]")
@json_option
@_registry_option
def show_cmd(spec: str, as_json: bool, registry_dir: Path | None) -> None:
    """Show one model version; NAME alone means the version in production.

    The JSON has name, version, stage, sha256, path (the ONNX file), classes, imgsz, metrics,
    dataset_hash, parent, created, author, train_config, evals and the stage history.
    """
    reg = _open(registry_dir)
    with _errors():
        info = reg.show(spec)
    if as_json:
        _echo_json(info)
        return
    overall = (info.get("metrics") or {}).get("overall") or {}
    click.echo(f"{info['name']}@{info['version']}  [{info['stage']}]")
    for key in ("sha256", "path", "card_path", "dataset_hash", "parent", "created", "author"):
        click.echo(f"  {key:<13} {_fmt(info.get(key))}")
    click.echo(f"  {'classes':<13} {', '.join(info['classes'] or [])}")
    click.echo(f"  {'imgsz':<13} {info['imgsz'][0]} x {info['imgsz'][1]}")
    if overall:
        click.echo(f"  {'metrics':<13} " + "  ".join(f"{k} {_fmt(v)}" for k, v in overall.items()))
    for key, ev in (info.get("evals") or {}).items():
        click.echo(f"  {'eval':<13} {key}: mAP50 {_fmt(ev.get('map50'))}  mAP50-95 {_fmt(ev.get('map50_95'))}")


def _class_names_from_data(data: Path) -> list[str]:
    d = _load_mapping(data, "dataset file")
    names = d.get("names")
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            raise click.ClickException(f"{data}: 'names' keys must be class ids 0..n-1") from None
    if isinstance(names, list):
        return [str(n) for n in names]
    raise click.ClickException(f"{data} has no 'names' list or mapping (expected a YOLO data.yaml)")


def _parse_imgsz(text: str) -> list[int]:
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give one size (640) or height,width (480,640)") from None
    if len(parts) not in (1, 2) or min(parts) <= 0:
        raise click.BadParameter(f"{text!r}: give one size (640) or height,width (480,640)")
    return parts * 2 if len(parts) == 1 else parts


@models.command("register")
@click.argument("onnx", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="Registry model name (lowercase letters, digits, '_', '.', '-').")
@click.option("--classes", multiple=True,
              help="Class names in model output order, comma-separated or repeated (default: from --data, "
                   "else the ONNX file's own metadata).")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The dataset's data.yaml: its 'names' give the class names.")
@click.option("--imgsz", default=None,
              help="Model input size, 640 or height,width (default: the ONNX file's own metadata).")
@click.option("--dataset-hash", default=None,
              help="Hash of the training dataset (default: the one named in --metrics).")
@click.option("--parent", default=None, help="The registry model this one was fine-tuned from, as name@version.")
@click.option("--metrics", "metrics_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Evaluation JSON (map50, map50_95, ..., per_class); also stored as the version's evaluation "
                   "when it names its dataset_hash and split.")
@click.option("--card", "card_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Model card YAML: purpose, data, training, limits, failure_modes, notes.")
@click.option("--train-config", "train_config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Training settings (JSON or YAML, e.g. the run's train_spec.json or args.yaml).")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The training checkpoint (.pt), kept for fine-tuning only; the station never loads it.")
@click.option("--stage", type=click.Choice(["candidate", "shadow"]), default="candidate", show_default=True,
              help="Stage of the new version (production only through `promote`).")
@_sign_key_option
@_user_option
@_reason_option
@_registry_option
def register_cmd(onnx: Path, name: str, classes: tuple[str, ...], data: Path | None, imgsz: str | None,
                 dataset_hash: str | None, parent: str | None, metrics_file: Path | None, card_file: Path | None,
                 train_config_file: Path | None, weights: Path | None, stage: str, sign_key: Path | None,
                 user: str | None, reason: str, registry_dir: Path | None) -> None:
    """Copy an ONNX model into the registry as a new version (a candidate by default).

    The version number is assigned (1, 2, ...). The ONNX file's own class names must match the ones
    given. A model card (card.md) is written from --card, the metrics and the provenance.
    """
    class_names = [c.strip() for item in classes for c in item.split(",") if c.strip()]
    if class_names and data is not None:
        raise click.UsageError("give --classes or --data, not both")
    if not class_names and data is not None:
        class_names = _class_names_from_data(data)
    size = _parse_imgsz(imgsz) if imgsz else None
    if not class_names or size is None:
        from inspector.runtime.model_artifact import read_onnx_metadata

        try:
            meta = read_onnx_metadata(onnx)
        except Exception as e:  # onnxruntime raises its own error types
            raise click.ClickException(f"cannot read the metadata of {onnx}: {e}") from None
        if not class_names:
            if meta.class_names is None:
                raise click.UsageError(f"{onnx} names no classes in its metadata: give --classes or --data")
            class_names = list(meta.class_names)
        if size is None:
            if meta.imgsz is None:
                raise click.UsageError(f"{onnx} states no input size in its metadata: give --imgsz")
            size = list(meta.imgsz)
    metrics = _load_mapping(metrics_file, "metrics file") if metrics_file else None
    dataset_hash = dataset_hash or (metrics or {}).get("dataset_hash")
    if not dataset_hash:
        raise click.UsageError("give --dataset-hash (or a --metrics evaluation that names its dataset_hash)")
    card = _load_mapping(card_file, "model card") if card_file else None
    train_config = _load_mapping(train_config_file, "training config") if train_config_file else {}
    reg = _open(registry_dir)
    with _errors():
        rec = reg.register(onnx, name, class_names, size, dataset_hash=dataset_hash, train_config=train_config,
                           parent=parent, metrics=metrics, author=user, card=card, weights_pt=weights, stage=stage,
                           reason=reason, signing_key=sign_key)
        if metrics and metrics.get("dataset_hash") and metrics.get("split"):
            reg.add_eval(name, rec["version"], metrics, user=rec["author"])
    click.echo(f"registered {name}@{rec['version']} [{rec['stage']}] sha256 {rec['sha256']}")
    for s in rec.get("signatures") or []:
        click.echo(f"  signed by key {s['key_id']}")
    click.echo(f"  {reg.root / name / rec['version']}")


@models.command("stage")
@click.argument("spec", metavar="NAME@VERSION")
@click.argument("stage", type=click.Choice(STAGE_CHOICES))
@_user_option
@_reason_option
@_registry_option
def stage_cmd(spec: str, stage: str, user: str | None, reason: str, registry_dir: Path | None) -> None:
    """Move a version to candidate, shadow or archived (production only via promote / rollback)."""
    from inspector.runtime.registry import parse_spec

    try:
        name, version = parse_spec(spec)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="NAME@VERSION") from None
    if version is None:
        raise click.BadParameter(f"name the version, e.g. {name}@3", param_hint="NAME@VERSION")
    reg = _open(registry_dir)
    with _errors():
        rec = reg.set_stage(name, version, stage, user, reason)
    click.echo(f"{name}@{version} is now {rec['stage']}")


@models.command("events")
@click.option("--name", default=None, help="Only the events of this model.")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON lines.")
@_registry_option
def events_cmd(name: str | None, as_json: bool, registry_dir: Path | None) -> None:
    """Show the event log: who registered, promoted, re-staged or rolled back what, and when."""
    reg = _open(registry_dir)
    with _errors():
        events = [e for e in reg.events() if name is None or e.get("name") == name]
    for e in events:
        if as_json:
            click.echo(json.dumps(e))
            continue
        stages = f"{e.get('from_stage') or '-'} -> {e.get('to_stage') or '-'}"
        extra = f" (replaced {e['name']}@{e['replaced']})" if e.get("replaced") else ""
        why = f": {e['reason']}" if e.get("reason") else ""
        click.echo(f"{e.get('time')}  {e.get('user'):<12} {e.get('action'):<16} {e.get('name')}@{e.get('version')}  "
                   f"{stages}{extra}{why}")


@models.command("verify")
@json_option
@_registry_option
def verify_cmd(as_json: bool, registry_dir: Path | None) -> None:
    """Check every version's files against their sha256 (index, manifest, record) and the event log's chain.

    Exits with status 1 when anything is wrong (with --json too: the report on stdout, the verdict on stderr).
    """
    reg = _open(registry_dir)
    with _errors():
        report = reg.verify()
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    for p in report.problems:
        click.echo(f"problem: {p}", err=True)
    lines = report.events.lines if report.events else 0
    if as_json:
        _echo_json({"registry": str(reg.root), **report.to_dict()})
    if not report.ok:
        raise click.ClickException(f"registry {reg.root}: {len(report.problems)} problem(s) in {report.versions} "
                                   f"version(s) and {lines} event(s)")
    if not as_json:
        click.echo(f"registry {reg.root}: ok ({report.versions} version(s), {lines} event(s), chain intact)")


# --- promote / rollback --------------------------------------------------------------------------
def _parse_margins(items: tuple[str, ...]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for item in items:
        metric, sep, value = item.partition("=")
        metric = metric.strip()
        if not sep or not metric:
            raise click.BadParameter(f"{item!r}: use metric=value, e.g. map50=0.01 (or metric=off)",
                                     param_hint="--margin")
        if value.strip().lower() in ("off", "none"):
            out[metric] = None
            continue
        try:
            out[metric] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: {value!r} is not a number", param_hint="--margin") from None
    return out


@click.command("promote")
@click.argument("spec", metavar="NAME@VERSION")
@click.option("--candidate-eval", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The candidate's evaluation JSON (default: the latest one stored with it in the registry "
                   "on a held-out set that production was also evaluated on).")
@click.option("--production-eval", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The production model's evaluation JSON on the same held-out set (default: the stored one).")
@click.option("--margin", "margins", multiple=True, metavar="METRIC=VALUE",
              help="Gate margin: the candidate must reach production + VALUE on METRIC (repeatable; defaults "
                   "map50=0 and map50_95=0; a negative value tolerates a drop; METRIC=off removes it).")
@click.option("--recall-tolerance", type=click.FloatRange(min=0.0), default=None,
              help="Largest allowed drop of any class's recall versus production [default: 0.02].")
@click.option("--reexport", is_flag=True,
              help="NAME@VERSION is production's own weights exported again (another input size, a dynamic "
                   "input; checked by the weights' sha256): it must stay within the margins but need not beat "
                   "production.")
@click.option("--dry-run", is_flag=True, help="Only print the gate's verdict; change nothing.")
@_sign_key_option
@_user_option
@_reason_option
@json_option
@log_level_option
@_registry_option
def promote(spec: str, candidate_eval: Path | None, production_eval: Path | None, margins: tuple[str, ...],
            recall_tolerance: float | None, reexport: bool, dry_run: bool, sign_key: Path | None, user: str | None,
            reason: str, as_json: bool, registry_dir: Path | None) -> None:
    """Put a version in production if it beats production on the same held-out set.

    Gate: every gated metric reaches production + margin, at least one is strictly better, and no
    class's recall drops more than the tolerance. The previous production version is archived and
    can be restored with `rollback`. Refusals are recorded too, and exit with status 1.
    """
    from training.registry import GateConfig, GateRefused, split_versioned_spec

    try:
        gate = GateConfig.with_overrides(_parse_margins(margins), recall_tolerance)
        if reexport:
            gate = dataclasses.replace(gate, require_improvement=False)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--margin") from None
    cand = _load_mapping(candidate_eval, "candidate evaluation") if candidate_eval else None
    prod = _load_mapping(production_eval, "production evaluation") if production_eval else None
    reg = _open(registry_dir)

    def report(result: GateResult, promoted: bool) -> None:
        if as_json:
            _echo_json({"candidate": result.candidate, "promoted": promoted, "dry_run": dry_run,
                        "replaced": result.production if promoted else None, "gate": result.to_dict()})
        else:
            click.echo(result.table())

    with _errors():
        try:
            if dry_run:
                result = reg.check_gate(spec, gate=gate, candidate_eval=cand, production_eval=prod)
            else:
                name, version = split_versioned_spec(spec)
                result = reg.promote(name, version, user, gate=gate, candidate_eval=cand, production_eval=prod,
                                     reason=reason, signing_key=sign_key)
        except GateRefused as e:
            if not as_json:
                raise  # its message carries the table
            report(e.result, False)
            raise click.ClickException(f"refused to promote {e.result.candidate}: "
                                       + "; ".join(e.result.reasons)) from None
    report(result, not dry_run)
    if dry_run:
        if not result.passed:
            raise click.ClickException("the gate refuses this promotion (dry run: nothing was changed)")
        return
    if not as_json:
        replaced = f" ({result.production} archived)" if result.production else ""
        click.echo(f"promoted {result.candidate} to production{replaced}")


@click.command("rollback")
@click.argument("name")
@_user_option
@_reason_option
@json_option
@log_level_option
@_registry_option
def rollback(name: str, user: str | None, reason: str, as_json: bool, registry_dir: Path | None) -> None:
    """Restore the previous production version of NAME in one step (the current one is archived).

    Repeating it walks further back through the promotion history.
    """
    reg = _open(registry_dir)
    with _errors():
        r = reg.rollback(name, user, reason)
    if as_json:
        _echo_json(asdict(r))
        return
    click.echo(f"rolled back {name}: production is now {name}@{r.restored} ({name}@{r.replaced} archived) "
               f"by {r.user} at {r.time}")


def add_registry_commands(group: click.Group) -> None:
    """Register ``models``, ``promote`` and ``rollback`` on ``group`` (the `inspector-train` group)."""
    for cmd in (models, promote, rollback):
        group.add_command(cmd)
