"""`inspector mes`: the MES outbox of a store: what is pending per output, re-sending a range, pruning."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from inspector.cli.store_access import db_options, open_store
from inspector.util.clickopts import json_option


@click.group("mes")
def mes() -> None:
    """MES outputs: outbox status per output, replay of delivered results, pruning of old ones."""


def _configured(config_path: str | None) -> list[str]:
    if not config_path:
        return []
    from inspector.config import load_config
    from inspector.config.schema import OpcUaOutput

    return [o.id for o in load_config(config_path).mes if not isinstance(o, OpcUaOutput)]


def _parse_time(text: str, option: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"expected an ISO time such as 2026-04-01T12:00:00Z, got {text!r}",
                                 param_hint=option) from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t  # a time without zone is UTC


@mes.command("status")
@db_options
@json_option
def status_cmd(db_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Per MES output: messages pending, the oldest pending one and its age, delivered count, last error."""
    from inspector.mes import outbox

    conn = open_store(db_path, config_path)
    try:
        st = outbox.status(conn, _configured(config_path))
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(st, sort_keys=True))
        return
    if not st:
        click.echo("no MES output has messages in this store")
        return
    for name, s in sorted(st.items()):
        age = "" if s["oldest_age_s"] is None else f" (oldest {s['oldest_pending']}, {s['oldest_age_s']:.0f} s ago)"
        click.echo(f"{name}: {s['pending']} pending{age}, {s['delivered']} delivered"
                   + (f", last delivered {s['last_delivered']}" if s["last_delivered"] else ""))
        if s["last_error"]:
            click.echo(f"  last error {s['last_error_at']}: {s['last_error']}")


@mes.command("replay")
@db_options
@click.option("--since", required=True, metavar="ISO_TIME",
              help="Re-send messages created at or after this time (no zone = UTC).")
@click.option("--until", default=None, metavar="ISO_TIME", help="... and before this time (default: now).")
@click.option("--transport", default=None, metavar="NAME", help="Only this MES output (its id); default: all.")
def replay_cmd(db_path: str | None, config_path: str | None, since: str, until: str | None,
               transport: str | None) -> None:
    """Queue already delivered messages again; the running station's forwarders send them.

    Receivers de-duplicate on each message's key (station/run/frame), so a replay fills gaps on
    the MES side without applying anything twice.
    """
    from inspector.mes import outbox

    t0 = _parse_time(since, "--since")
    t1 = _parse_time(until, "--until") if until else None
    conn = open_store(db_path, config_path)
    try:
        _check_transport(conn, transport, config_path)
        n = outbox.replay(conn, t0, until=t1, transport=transport)
    finally:
        conn.close()
    click.echo(f"{n} message(s) queued again" + (f" for {transport}" if transport else ""))


def _check_transport(conn, transport: str | None, config_path: str | None) -> None:
    """--transport must name an output of this store or of the config (the message lists them)."""
    from inspector.mes import outbox

    known = set(outbox.transports_in(conn)) | set(_configured(config_path))
    if transport is not None and transport not in known:
        raise click.BadParameter(f"no MES output {transport!r} in this store; known: "
                                 f"{', '.join(sorted(known)) or 'none'}", param_hint="--transport")


@mes.command("prune")
@db_options
@click.option("--older-than-days", "days", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="DAYS", help="Delete messages delivered more than DAYS ago (default: mes_outbox.retention_days "
              "of --config, else 7).")
@click.option("--transport", default=None, metavar="NAME", help="Only this MES output (its id); default: all.")
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True,
              help="Rows deleted per transaction (a running station's writer waits at most one batch).")
def prune_cmd(db_path: str | None, config_path: str | None, days: float | None, transport: str | None,
              batch: int) -> None:
    """Delete delivered MES messages older than the retention, now.

    Running stations do this on their own every few minutes; undelivered messages are never
    deleted, and the decisions themselves stay in the store.
    """
    from datetime import timedelta

    from inspector.mes import outbox

    conn = open_store(db_path, config_path)  # first: it reports a bad --config cleanly
    try:
        if days is None:
            days = 7.0
            if config_path:
                from inspector.config import load_config

                days = load_config(config_path).mes_outbox.retention_days
        before = datetime.now(timezone.utc) - timedelta(days=days)
        _check_transport(conn, transport, config_path)
        n = outbox.prune_delivered(conn, before, transport=transport, batch=batch)
    finally:
        conn.close()
    click.echo(f"{n} delivered message(s) older than {days:g} day(s) deleted" + (f" for {transport}" if transport else ""))
