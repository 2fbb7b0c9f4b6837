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


def _anchor_groups(result, checkpoint_reports, missing: list[str]) -> list[dict]:
    """Which anchors were checked, one entry per source: how many, which held, which failed."""
    groups: dict[tuple[str, str], dict] = {}

    def group(kind: str, source: str) -> dict:
        return groups.setdefault((kind, source), {"kind": kind, "source": source, "checked": 0, "held": 0,
                                                  "failed_seqs": [], "newest": None})

    for rep in checkpoint_reports:
        g = group("checkpoint", rep.path)
        g.update(lines=rep.lines, signatures="verified" if rep.signatures_checked else "not checked (no public key)",
                 key_ids=list(rep.key_ids), problems=list(rep.problems))
    for path in missing:
        group("checkpoint", path).update(lines=0, signatures="file missing", key_ids=[], problems=[])
    for c in result.anchors:
        a = c.anchor
        g = group(a.kind, a.source or a.kind)
        g["checked"] += 1
        if c.ok:
            g["held"] += 1
            if g["newest"] is None or a.seq > g["newest"]["seq"]:
                g["newest"] = {"seq": a.seq, "hash": a.hash}
        else:
            g["failed_seqs"].append(a.seq)
    return list(groups.values())


def _verify_json(result, anchor: tuple[int, str] | None, anchors: list[dict], extra: list[str]) -> dict:
    problems = [asdict(p) for p in result.problems] + [
        {"seq": None, "entity": None, "entity_id": None, "message": m} for m in extra]
    return {"ok": result.ok and not extra, "message": result.message if result.problems or not extra else extra[0],
            "audit_rows": result.audit_rows, "entities_checked": result.entities_checked,
            "anchor": None if anchor is None else {"seq": anchor[0], "hash": anchor[1]},
            "anchors": anchors, "problems": problems}


def _audit_sources(config_path: str | None, db_file: Path, checkpoints: tuple[str, ...], public_keys: tuple[str, ...],
                   mes_messages: tuple[str, ...]) -> tuple[list[Path], list[Path], list[Path], bool]:
    """Checkpoint files, public keys and MES message folders to check: the ones given, else what
    the config (or the database's folder) names; and whether the config says checkpoints are written."""
    from inspector.store.checkpoints import DEFAULT_FILE, public_path_for

    files = [Path(c) for c in checkpoints]
    keys = [Path(k) for k in public_keys]
    messages = [Path(m) for m in mes_messages]
    data_dir = db_file.parent
    cfg = None
    if config_path:
        from inspector.cli.common import load_station_config

        cfg = load_station_config(config_path)
    if not files:
        name = Path(cfg.audit.checkpoint_file).expanduser() if cfg is not None else Path(DEFAULT_FILE)
        files.append(name if name.is_absolute() else data_dir / name)
    if not keys and cfg is not None and cfg.audit.checkpoint_key:
        pub = public_path_for(Path(cfg.audit.checkpoint_key).expanduser())
        if pub.is_file():
            keys.append(pub)
    if not messages and cfg is not None:
        from inspector.config.schema import FileDropOutput

        for out in cfg.mes:  # what a file drop delivered (the receiver's side may have kept more)
            if isinstance(out, FileDropOutput):
                folder = Path(out.folder).expanduser()
                folder = folder if folder.is_absolute() else data_dir / folder
                if folder.is_dir():
                    messages.append(folder)
    return files, keys, messages, bool(cfg is not None and cfg.audit.checkpoint_key)


@db.command("verify")
@db_options
@click.option("--anchor", default=None, metavar="SEQ:HASH",
              help="An audit head published earlier (see `db stats`); the chain must still contain it.")
@click.option("--checkpoints", "checkpoints", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Signed checkpoint file (default: audit.checkpoint_file of --config, else "
                   "audit-checkpoints.jsonl beside the database, when present). Repeatable.")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Public key the checkpoints must be signed with (default: <audit.checkpoint_key>.pub of "
                   "--config). Without one, checkpoint signatures are not checked. Repeatable.")
@click.option("--mes-messages", "mes_messages", multiple=True, type=click.Path(exists=True),
              help="MES messages a receiver kept: a .json / .jsonl file or a folder of them (default: the "
                   "file-drop folders of --config). Their audit heads must be in the chain. Repeatable.")
@json_option
def verify_cmd(db_path: str | None, config_path: str | None, anchor: str | None, checkpoints: tuple[str, ...],
               public_keys: tuple[str, ...], mes_messages: tuple[str, ...], as_json: bool) -> None:
    """Recompute the audit hash chain and every audited row, and check every published head
    (signed checkpoints, MES messages, the outbox, --anchor); exit 1 naming the first problem."""
    from inspector.store.anchors import message_anchors, outbox_anchors
    from inspector.store.audit import verify
    from inspector.store.checkpoints import CheckpointKeyError, load_public_key, read_checkpoints

    expected = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter("expected SEQ:HASH, e.g. 1234:<64 hex digits>", param_hint="--anchor")
        expected = (int(seq), digest.lower())
    files, key_files, message_paths, signing = _audit_sources(
        config_path, resolve_db_path(db_path, config_path), checkpoints, public_keys, mes_messages)
    try:
        keys = [load_public_key(k) for k in key_files]
    except (CheckpointKeyError, OSError) as e:
        raise click.BadParameter(str(e), param_hint="--public-key") from None
    reports = [read_checkpoints(f, keys) for f in files if f.is_file()]
    # The config's station signs checkpoints, yet there is no file: said, not failed (it may never have run).
    missing = [str(f) for f in files if not f.is_file()] if signing else []
    extra = [p for r in reports for p in r.problems]
    conn = open_store(db_path, config_path)
    try:
        stations = [r[0] for r in conn.execute("SELECT id FROM stations")]
        found = [a for r in reports for a in r.anchors] + outbox_anchors(conn)
        found += message_anchors(message_paths, stations)
        result = verify(conn, anchor=expected, anchors=found)
    finally:
        conn.close()
    groups = _anchor_groups(result, reports, missing)
    if as_json:
        click.echo(json.dumps(_verify_json(result, expected, groups, extra), sort_keys=True))
        if not result.ok or extra:
            raise SystemExit(1)
        return
    for m in missing:
        click.echo(f"warning: no checkpoint file at {m}, though the config's station signs checkpoints", err=True)
    for g in groups:
        if g["kind"] == "checkpoint" and g.get("signatures", "").startswith("not checked"):
            click.echo(f"warning: checkpoint signatures in {g['source']} not checked: give --public-key "
                       "(or a --config whose audit.checkpoint_key has its .pub beside it)", err=True)
    if result.ok and not extra:
        click.echo(result.message)
        for g in groups:
            click.echo(f"  anchors: {g['held']} {g['kind']} head(s) from {g['source']} held")
        return
    first = result.message if not result.ok else extra[0]
    click.echo(f"TAMPERED: {first}", err=True)
    rest = [p.message for p in result.problems[1:]] + (extra if not result.ok else extra[1:])
    for m in rest[:9]:
        click.echo(f"  also: {m}", err=True)
    raise SystemExit(1)


@db.command("keygen")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="Private key file to create (mode 0600; keep it outside the data folder). The public key "
                   "is written beside it as KEY.pub.")
@click.option("--force", is_flag=True, help="Replace an existing key (checkpoints signed with it then need its "
              "old .pub to verify).")
@json_option
def keygen_cmd(key_path: str, force: bool, as_json: bool) -> None:
    """Create the ed25519 key pair the station signs audit checkpoints with (config audit.checkpoint_key)."""
    from inspector.store.checkpoints import generate_keypair

    try:
        priv, pub, kid = generate_keypair(key_path, overwrite=force)
    except FileExistsError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps({"private_key": str(priv), "public_key": str(pub), "key_id": kid}, sort_keys=True))
        return
    click.echo(f"private key {priv} (mode 0600), public key {pub}, key id {kid}")
    click.echo(f"set audit.checkpoint_key: {priv} in the station config; give {pub} to `inspector db verify "
               "--public-key` (keep a copy of it off the station)")


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
    """Export decisions (frame context, verdict, rule ids, detections, model set, config hash) to CSV or JSONL.

    Incidents carry the columns of the incident reports (docs/reports.md)."""
    from inspector.cli.incident_export import export_incidents
    from inspector.store.export import export

    conn = open_store(db_path, config_path)
    try:
        if table == "incidents":  # the report rows: the store cannot build them itself
            n = export_incidents(conn, out, fmt=fmt, progress=progress)
        else:
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
    Clips and evidence images of incidents closed (or marked false alarms) before the limit are
    deleted unless still shared; open and acknowledged incidents keep theirs at any age.
    Decisions, incidents and their audit rows are never deleted; each prune is audited.
    """
    from datetime import datetime, timedelta, timezone

    from inspector.store.evidence_retention import prune_incident_evidence
    from inspector.store.images import retention

    if days is None and config_path:
        from inspector.config import load_config

        days = load_config(config_path).storage.retention_days
    if days is None:
        raise click.UsageError("give --older-than-days N, or a --config whose storage.retention_days is set")
    path = resolve_db_path(db_path, config_path)
    conn = open_store(db_path, config_path)
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    try:
        # Evidence first: files it releases may then go with their frames' images in the same run.
        ev = prune_incident_evidence(conn, path.parent, cutoff)
        report = retention(conn, Path(images_dir) if images_dir else path.parent / "images", cutoff)
    finally:
        conn.close()
    click.echo(f"pruned {report.frames_pruned} frame image(s), {report.files_deleted} file(s), "
               f"{report.bytes_freed / 1e6:.1f} MB freed; kept {report.frames_kept_needed} needed as evidence "
               f"and {report.files_kept_shared} shared file(s)")
    click.echo(f"pruned the evidence of {ev.incidents_pruned} closed incident(s): {ev.files_deleted} file(s), "
               f"{ev.bytes_freed / 1e6:.1f} MB freed; kept {ev.incidents_kept_open} older incident(s) still open "
               f"and {ev.files_kept_shared} shared file(s)")
