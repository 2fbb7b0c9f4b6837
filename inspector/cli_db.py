"""`inspector db`: verify the audit chain, show statistics and export decisions of a store."""

from __future__ import annotations

import json
from pathlib import Path

import click

_DB_HELP = "SQLite database of the store (default: the database of --config)."
_CONFIG_HELP = "Station config whose data folder holds the database (INSPECTOR_DATA overrides its data_dir)."


def _db_path(db_path: str | None, config_path: str | None) -> Path:
    """--db wins; else <data folder of --config>/<storage.db_name>. Neither: say so."""
    if db_path:
        return Path(db_path)
    if not config_path:
        raise click.UsageError("give the database with --db PATH, or the station config with --config FILE")
    from inspector.config import ConfigError, load_config, resolve_data_dir

    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(f"invalid station config ({len(e.errors)} error(s)):\n{e}") from None
    return resolve_data_dir(cfg) / cfg.storage.db_name


def _open(db_path: str | None, config_path: str | None):
    """Open an existing store; never create an empty one on a read command."""
    import sqlite3

    from inspector.store.db import SchemaTooNewError, open_db

    path = _db_path(db_path, config_path)
    if not path.is_file():
        raise click.ClickException(f"no Inspector database at {path}")
    try:
        return open_db(path, create=False)
    except SchemaTooNewError as e:
        raise click.ClickException(f"{path}: {e}") from None
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"{path}: not a readable Inspector database ({e})") from None


def _db_options(f):
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), help=_CONFIG_HELP)(f)
    return click.option("--db", "db_path", type=click.Path(dir_okay=False), help=_DB_HELP)(f)


@click.group("db")
def db() -> None:
    """Inspect a decision store: verify its audit chain, show statistics, export decisions."""


@db.command("verify")
@_db_options
@click.option("--anchor", default=None, metavar="SEQ:HASH",
              help="An audit head published earlier (see `db stats`); the chain must still contain it.")
def verify_cmd(db_path: str | None, config_path: str | None, anchor: str | None) -> None:
    """Recompute the audit hash chain and every audited row; exit 1 naming the first tampered row."""
    from inspector.store.audit import verify

    expected = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter("expected SEQ:HASH, e.g. 1234:<64 hex digits>", param_hint="--anchor")
        expected = (int(seq), digest.lower())
    conn = _open(db_path, config_path)
    try:
        result = verify(conn, anchor=expected)
    finally:
        conn.close()
    if result.ok:
        click.echo(result.message)
        return
    click.echo(f"TAMPERED: {result.message}", err=True)
    for p in result.problems[1:10]:
        click.echo(f"  also: {p.message}", err=True)
    raise SystemExit(1)


@db.command("stats")
@_db_options
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as one JSON object.")
def stats_cmd(db_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Show counts (frames, verdicts, reviews, incidents, audit rows), time range and size of a store."""
    from inspector.store.queries import stats

    conn = _open(db_path, config_path)
    try:
        s = stats(conn)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(s, sort_keys=True))
        return
    click.echo(f"frames {s['frames']}, decisions {s['decisions']} ("
               + ", ".join(f"{k} {n}" for k, n in s["verdicts"].items()) + ")")
    click.echo(f"reviews {s['reviews']} ({s['unreviewed_flagged']} flagged frames waiting), "
               f"incidents {s['incidents']}, runs {s['runs']}")
    head = s["audit_head"]
    click.echo(f"audit rows {s['audit_rows']}" + (f", head {head['seq']}:{head['hash']}" if head else ""))
    click.echo(f"time {s['first_t'] or '-'} .. {s['last_t'] or '-'}, size {s['db_bytes'] / 1e6:.2f} MB, "
               f"schema v{s['schema_version']}")


@db.command("export")
@_db_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv: one row per decision; jsonl: also the reasons and kept boxes.")
@click.option("--table", type=click.Choice(["decisions", "reviews", "incidents"]), default="decisions",
              show_default=True, help="What to export.")
def export_cmd(db_path: str | None, config_path: str | None, out: str, fmt: str, table: str) -> None:
    """Export decisions (frame context, verdict, rule ids, detections, model set, config hash) to CSV or JSONL."""
    from inspector.store.export import export

    conn = _open(db_path, config_path)
    try:
        n = export(conn, out, fmt=fmt, table=table)
    finally:
        conn.close()
    click.echo(f"{n} {table} written to {out}")


@db.command("prune")
@_db_options
@click.option("--older-than-days", "days", type=click.IntRange(min=1), default=None,
              help="Delete unneeded images older than this (default: storage.retention_days of --config).")
@click.option("--images", "images_dir", type=click.Path(file_okay=False), default=None,
              help="Image store root (default: images/ beside the database).")
def prune_cmd(db_path: str | None, config_path: str | None, days: int | None, images_dir: str | None) -> None:
    """Apply the image retention policy: delete old images no decision, review or incident needs.

    Images of pass frames nobody reviewed are deleted once older than the limit; images of fail,
    review, error and not-inspected frames, of reviewed frames and of incidents are always kept.
    Decisions and their audit rows are never deleted; the prune itself is audited.
    """
    from datetime import datetime, timedelta, timezone

    from inspector.store.images import retention

    if days is None and config_path:
        from inspector.config import load_config

        days = load_config(config_path).storage.retention_days
    if days is None:
        raise click.UsageError("give --older-than-days N, or a --config whose storage.retention_days is set")
    path = _db_path(db_path, config_path)
    conn = _open(db_path, config_path)
    try:
        report = retention(conn, Path(images_dir) if images_dir else path.parent / "images",
                           datetime.now(timezone.utc) - timedelta(days=days))
    finally:
        conn.close()
    click.echo(f"pruned {report.frames_pruned} frame image(s), {report.files_deleted} file(s), "
               f"{report.bytes_freed / 1e6:.1f} MB freed; kept {report.frames_kept_needed} needed as evidence "
               f"and {report.files_kept_shared} shared file(s)")
