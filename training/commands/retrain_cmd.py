"""`inspector-train retrain`: confirmed labels -> a registered candidate, in one command.

Register it with ``main.add_command(retrain)``. The library does the work (``training.retrain``);
this module adds the command line: options, progress on stderr, SIGINT / SIGTERM as a cancel, and
``--json`` (the result alone on stdout; everything the trainer prints goes to stderr).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from inspector.util.clickopts import json_option, log_level_option, progress_option
from inspector.util.progress import Progress

EXIT_CANCELLED = 130   # like a shell's Ctrl-C: the run stopped on request, the registry is untouched
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """ultralytics and stray prints write to stdout; during the run that goes to stderr (``--json`` owns stdout)."""
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        from training import ultralytics_env  # noqa: F401  (offline settings before ultralytics loads)
        import ultralytics  # noqa: F401  (loaded here: what it prints on import goes to stderr too)

        moved: list[tuple[logging.StreamHandler, object]] = []
        for h in logging.getLogger("ultralytics").handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.__stdout__, stdout):
                moved.append((h, h.stream))
                h.setStream(sys.stderr)
        try:
            yield
        finally:
            for h, stream in moved:
                h.setStream(stream)


@contextlib.contextmanager
def _signals_cancel(token) -> Iterator[None]:  # token: training.retrain.CancelToken
    """SIGINT and SIGTERM cancel the run (at once, unless registering has begun: then it completes)."""
    def on_signal(signum: int, _frame: object) -> None:
        token.interrupt(signal.Signals(signum).name)

    try:
        previous = {s: signal.signal(s, on_signal) for s in CANCEL_SIGNALS}
    except ValueError:  # not the main thread: the caller cancels through the token
        previous = {}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _echo_summary(result) -> None:  # result: training.retrain.RetrainResult
    def fig(ev: dict, key: str) -> str:
        v = ev.get(key)
        return "-" if not isinstance(v, (int, float)) else f"{v:.3f}"

    click.echo(f"registered {result.spec} [candidate], parent {result.parent}, author {result.author}")
    click.echo(f"  {result.started_from.describe()}")
    click.echo(f"  held-out set {result.candidate.get('dataset_hash')} [{result.candidate.get('split')}]")
    for key in ("map50", "map50_95", "precision", "recall"):
        click.echo(f"  {key:10s} candidate {fig(result.candidate, key)}  production {fig(result.production, key)}")
    click.echo(f"  files: {result.paths['workdir']}")
    click.echo(f"  next: inspector-train promote {result.spec} (the registry's gate decides)")


@click.command("retrain")
@click.option("--from-db", "db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The station's store (inspector.sqlite): the labels operators confirmed there are the data.")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The station config: the model to retrain (its first) and the operating thresholds of the "
                   "evaluations.")
@click.option("--images", "images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The store's image folder (default: images/ beside the database).")
@click.option("--registry", "registry", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Registry folder (default: $INSPECTOR_REGISTRY, else the repository's models/ folder).")
@click.option("--name", default=None,
              help="Registry name of the model to retrain (default: the station config's first model).")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="Maximum epochs.")
@click.option("--imgsz", type=click.IntRange(min=32), default=None,
              help="Training and export size, a multiple of 32 (default: production's input size).")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images per batch.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data-loading workers.")
@click.option("--device", default="cpu", show_default=True, help="cpu, or a CUDA device such as 0.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split and of training.")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.2,
              show_default=True, help="Share of groups (lots, wafers, cameras) held out for both evaluations.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the dataset, the training run, the ONNX file and the evaluations "
                   "(default: runs/retrain/NAME-TIME). Removed on cancel if this command created it.")
@click.option("--user", default=None,
              help="The author, for the record (default: $INSPECTOR_USER, else the login name).")
@click.option("--reason", default="retrained from confirmed labels", show_default=True,
              help="Why, in a few words; kept in the registry's event log.")
@progress_option
@json_option
@log_level_option
def retrain(db: Path, config: Path, images: Path | None, registry: Path | None, name: str | None, epochs: int,
            imgsz: int | None, batch: int, workers: int, device: str, seed: int, val_fraction: float,
            workdir: Path | None, user: str | None, reason: str, progress: Progress, as_json: bool) -> None:
    """Retrain a model from the labels operators confirmed, and register it as a candidate.

    One run: a dataset from the store's confirmed reviews (split by group), training that starts from
    production's own weights (or the architecture production records; nothing else), ONNX export,
    evaluation of the candidate AND production on the same held-out split, and last registration of
    the candidate (parent = production, author, dataset hash, card, both evaluations stored).
    Promote it afterwards with `inspector-train promote NAME@VERSION`: the gate compares them.

    SIGINT or SIGTERM cancels: before registration nothing is left in the registry (exit code 130);
    registration itself is never interrupted.
    """
    from training.registry import RegistryError
    from training.retrain import CancelToken, RetrainCancelled, RetrainError, RetrainSpec, model_name_from_config
    from training.retrain import retrain as run_retrain

    token = CancelToken()
    from inspector.config import ConfigError

    try:
        name = name or model_name_from_config(config)
    except (RetrainError, ConfigError, ValueError) as e:
        raise click.ClickException(f"{config}: {e}") from None
    workdir = workdir or Path("runs") / "retrain" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = RetrainSpec(db=db, config=config, workdir=workdir, name=name, registry=registry, images=images,
                       epochs=epochs, imgsz=imgsz, batch=batch, workers=workers, device=device, seed=seed,
                       val_fraction=val_fraction, user=user, reason=reason)
    with _signals_cancel(token):   # kept to the end: a late signal never cuts the result short
        try:
            with _stdout_to_stderr():
                result = run_retrain(spec, progress=progress, cancel=token)
        except RetrainCancelled as e:
            click.echo(f"retrain cancelled ({e}): nothing was registered", err=True)
            raise SystemExit(EXIT_CANCELLED) from None
        except (RetrainError, RegistryError) as e:
            raise click.ClickException(str(e)) from None
        except Exception as e:  # a stage's own error (dataset, training, export, evaluation): say which and where
            logging.getLogger(__name__).debug("retrain failed", exc_info=True)
            raise click.ClickException(f"{type(e).__name__}: {e} (files kept in {workdir})") from None
        if result.cancel_ignored:
            click.echo(f"cancel ({result.cancel_ignored}) came while registering, which is never interrupted: "
                       f"{result.spec} is registered", err=True)
        if as_json:
            click.echo(json.dumps(result.to_json(), allow_nan=False, default=str))
        else:
            _echo_summary(result)


if __name__ == "__main__":  # pragma: no cover - `python -m training.commands.retrain_cmd` before it is registered
    retrain()
