"""`inspector config`: validate station configs and export their JSON schema."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from inspector.util.clickopts import json_option


@click.group("config")
def config() -> None:
    """Validate station configs and export their JSON schema."""


def _warnings(cfg: Any) -> list[str]:
    """What is valid but unsafe: credentials that would cross the network in clear text."""
    from inspector.config.schema.mes import HttpOutput, MqttOutput
    from inspector.mes.mqtt import credentials_in_clear
    from inspector.util.redact import redact_url

    out: list[str] = []
    for o in cfg.mes:
        if isinstance(o, MqttOutput):
            why = credentials_in_clear(o.id, o.host, o.port, tls=o.tls,
                                       has_credentials=bool(o.username_env or o.password_env))
            if why:
                out.append(why)
        elif isinstance(o, HttpOutput):
            if redact_url(o.url) != o.url:
                out.append(f"mes output {o.id}: the url carries a password or token; it is masked in logs and "
                           "stored copies, but better held in an environment variable (token_env)")
            if o.url.startswith("http://") and (o.token_env or "@" in o.url.split("/", 3)[2]):
                out.append(f"mes output {o.id}: credentials go over plain http://, readable by anyone on the "
                           "network path; use https://")
    return out


def _check(path: str) -> dict[str, Any]:
    """One file's verdict: what the station would run (and what is unsafe in it), or every error
    (file, field path, message). Messages may quote a URL: its credentials are masked."""
    from inspector.config import ConfigError, config_hash, load_config
    from inspector.util.redact import redact_text

    try:
        cfg = load_config(path)
    except ConfigError as e:
        return {"file": path, "ok": False,
                "errors": [{**asdict(issue), "message": redact_text(issue.message)} for issue in e.errors]}
    return {"file": path, "ok": True, "station": cfg.station.id, "domain": cfg.station.domain,
            "models": len(cfg.models), "rules": len(cfg.rules), "config_hash": config_hash(cfg),
            "warnings": _warnings(cfg)}


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option
def config_check(files: tuple[str, ...], as_json: bool) -> None:
    """Validate station config FILES; print every error (file, field path, what was expected)."""
    from inspector.config import ConfigIssue

    results = [_check(f) for f in files]
    failed = sum(not r["ok"] for r in results)
    if as_json:
        click.echo(json.dumps({"ok": not failed, "files": results}, sort_keys=True))
    else:
        for r in results:
            if r["ok"]:
                click.echo(f"{r['file']}: ok (station {r['station']}, domain {r['domain']}, {r['models']} model(s), "
                           f"{r['rules']} rule(s), config {r['config_hash'][:12]})")
                for w in r["warnings"]:
                    click.echo(f"{r['file']}: warning: {w}", err=True)
                continue
            click.echo(f"{r['file']}: {len(r['errors'])} error(s)", err=True)
            click.echo("\n".join(str(ConfigIssue(**i)) for i in r["errors"]), err=True)
    if failed:
        sys.exit(1)


@config.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def config_schema(output: str | None) -> None:
    """Print the JSON schema of station configs (for editor completion and validation)."""
    from inspector.config import export_json_schema, write_json_schema

    if output:
        write_json_schema(Path(output))
    else:
        click.echo(json.dumps(export_json_schema(), indent=2, sort_keys=True))
