"""`inspector db`: verify the audit chain, show statistics and export decisions of a store."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from inspector.cli.store_access import db_options, open_store, resolve_db_path
from inspector.util.clickopts import json_option, progress_option
from inspector.util.progress import Progress


@click.group("db")
def db() -> None:
    """Inspect a decision store: verify its audit chain, show statistics, export decisions."""


def _verify_json(result, anchor: tuple[int, str] | None) -> dict:
    return {"ok": result.ok, "message": result.message, "audit_rows": result.audit_rows,
            "entities_checked": result.entities_checked,
            "anchor": None if anchor is None else {"seq": anchor[0], "hash": anchor[1]},
            "problems": [asdict(p) for p in result.problems]}


@db.command("verify")
@db_options
@click.option("--anchor", default=None, metavar="SEQ:HASH",
              help="An audit head published earlier (see `db stats`); the chain must still contain it.")
@json_option
def verify_cmd(db_path: str | None, config_path: str | None, anchor: str | None, as_json: bool) -> None:
    """Recompute the audit hash chain and every audited row; exit 1 naming the first tampered row."""
    from inspector.store.audit import verify

    expected = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter("expected SEQ:HASH, e.g. 1234:<64 hex digits>", param_hint="--anchor")
        expected = (int(seq), digest.lower())
    conn = open_store(db_path, config_path)
    try:
        result = verify(conn, anchor=expected)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(_verify_json(result, expected), sort_keys=True))
        if not result.ok:
            raise SystemExit(1)
        return
    if result.ok:
        click.echo(result.message)
        return
    click.echo(f"TAMPERED: {result.message}", err=True)
    for p in result.problems[1:10]:
        click.echo(f"  also: {p.message}", err=True)
    raise SystemExit(1)


@db.command("stats")
@db_options
@json_option
def stats_cmd(db_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Show counts (frames, verdicts, reviews, incidents, audit rows), time range and size of a store."""
    from inspector.store.queries import stats

    conn = open_store(db_path, config_path)
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
@db_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv: one row per decision; jsonl: also the reasons and kept boxes.")
@click.option("--table", type=click.Choice(["decisions", "reviews", "incidents"]), default="decisions",
              show_default=True, help="What to export.")
@progress_option
def export_cmd(db_path: str | None, config_path: str | None, out: str, fmt: str, table: str,
               progress: Progress) -> None:
    """Export decisions (frame context, verdict, rule ids, detections, model set, config hash) to CSV or JSONL."""
    from inspector.store.export import export

    conn = open_store(db_path, config_path)
    try:
        n = export(conn, out, fmt=fmt, table=table, progress=progress)
    finally:
        conn.close()
    click.echo(f"{n} {table} written to {out}")


@db.command("prune")
@db_options
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
    path = resolve_db_path(db_path, config_path)
    conn = open_store(db_path, config_path)
    try:
        report = retention(conn, Path(images_dir) if images_dir else path.parent / "images",
                           datetime.now(timezone.utc) - timedelta(days=days))
    finally:
        conn.close()
    click.echo(f"pruned {report.frames_pruned} frame image(s), {report.files_deleted} file(s), "
               f"{report.bytes_freed / 1e6:.1f} MB freed; kept {report.frames_kept_needed} needed as evidence "
               f"and {report.files_kept_shared} shared file(s)")
