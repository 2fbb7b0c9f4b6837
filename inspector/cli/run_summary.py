"""The end of `inspector run` / `demo`: the run summary, as text for people or JSON for programs."""

from __future__ import annotations

import json

import click


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def print_summary(s: dict) -> None:
    click.echo(f"Station {s['station']}  run {s['run_id']}  config {s['config_hash'][:12]}  "
               f"models {s['model_set_version']}")
    if not s["inspected"]:
        click.echo(f"NOT INSPECTED: {s['note']}")
    unit = "dies" if s["dies"] else "frames"
    fps = "-" if s["throughput_fps"] is None else f"{s['throughput_fps']:.1f}"
    click.echo(f"{s['frames']} frames ({s['dies']} dies) from {s['lots']} lot(s), {len(s['wafers'])} wafer(s) in "
               f"{s['seconds']:.1f} s ({fps} {unit}/s), {s['decisions']} decisions, {s['stored']} stored")
    click.echo("verdicts: " + ", ".join(f"{k} {n}" for k, n in s["verdicts"].items()))
    st = s["stages_ms"]
    click.echo(f"latency per frame (capture -> stored): p50 {_fmt_ms(s['latency_ms']['p50'])}, "
               f"p99 {_fmt_ms(s['latency_ms']['p99'])}; inference p50 {_fmt_ms(st['inference']['p50'])}, "
               f"rules p50 {_fmt_ms(st['rules']['p50'])}")
    if s["dropped"] or s["corrupt"]:
        click.echo(f"dropped {s['dropped']} (monitoring: oldest frame dropped when behind), corrupt {s['corrupt']}")
    for w, info in s["wafers"].items():
        line = f"wafer {w}: truth {info.get('truth_signature') or '-'}"
        if "verdict" in info:
            line += (f" | found {info['signature']} | wafer {info['verdict']} | dies "
                     + ", ".join(f"{k} {n}" for k, n in sorted(info["dies"].items())))
        click.echo(line)
        for row in info.get("map") or ():
            click.echo("    " + row)
    if any("map" in i for i in s["wafers"].values()):
        click.echo("    (. pass  X fail  ? review  ! error  - not inspected)")
    for err in s["errors"][-5:]:
        click.echo(f"warning: {err}", err=True)
    click.echo(f"database {s['db']}")


def finish(summary: dict, as_json: bool) -> None:
    """Print the summary; a run that did not complete cleanly is an error (exit 1) naming where to look."""
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        print_summary(summary)
    if not summary["complete"]:
        raise click.ClickException(
            f"run {summary['run_id']} did not complete cleanly (state {summary['state']}, "
            f"{summary['verdicts']['not_inspected']} not inspected, {summary['store_failed']} store failure(s)); "
            f"see {summary['summary_file'] or summary['db']}")
