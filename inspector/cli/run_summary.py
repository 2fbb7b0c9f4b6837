"""The end of `inspector run` / `demo`: the run summary, as text for people or JSON for programs."""

from __future__ import annotations

import json

import click

from inspector.store.anchors import anchor_of_db

# Exit status of a run that faulted (the record of decisions failed: units were taken but not
# recorded), apart from 1 (incomplete: units not inspected or not acknowledged) so that line
# control can tell "re-run these units" from "check the run".
EXIT_FAULTED = 3


class RunFaulted(click.ClickException):
    exit_code = EXIT_FAULTED


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def print_summary(s: dict) -> None:
    click.echo(f"Station {s['station']}  run {s['run_id']}  config {s['config_hash'][:12]}  "
               f"models {s['model_set_version']}")
    if not s["inspected"]:
        click.echo(f"NOT INSPECTED: {s['note']}")
    unit = "dies" if s["dies"] else "frames"
    fps = "-" if s["throughput_fps"] is None else f"{s['throughput_fps']:.1f}"
    if s.get("site"):
        where = f"from {len(s['site']['cameras'])} camera(s)"
    else:
        where = f"({s['dies']} dies) from {s['lots']} lot(s), {len(s['wafers'])} wafer(s)"
    click.echo(f"{s['frames']} frames {where} in {s['seconds']:.1f} s ({fps} {unit}/s), {s['decisions']} decisions, "
               f"{s['stored']} stored")
    click.echo("verdicts: " + ", ".join(f"{k} {n}" for k, n in s["verdicts"].items()))
    st = s["stages_ms"]
    click.echo(f"latency per frame (capture -> stored): p50 {_fmt_ms(s['latency_ms']['p50'])}, "
               f"p99 {_fmt_ms(s['latency_ms']['p99'])}; inference p50 {_fmt_ms(st['inference']['p50'])}, "
               f"rules p50 {_fmt_ms(st['rules']['p50'])}")
    if s["dropped"] or s["corrupt"]:
        click.echo(f"dropped {s['dropped']} (monitoring: oldest frame dropped when behind), corrupt {s['corrupt']}")
    _print_events_and_fault(s)
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
    if s.get("site"):
        _print_site(s["site"])
    for err in s["errors"][-5:]:
        click.echo(f"warning: {err}", err=True)
    click.echo(f"database {s['db']}")


def _print_events_and_fault(s: dict) -> None:
    counts = (s.get("events") or {}).get("counts") or {}
    if counts:
        click.echo("station events: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    unrecorded = s.get("unrecorded") or {}
    if unrecorded.get("count"):
        shown = unrecorded.get("frames") or []
        more = "" if len(shown) >= unrecorded["count"] else f" (first {len(shown)} listed)"
        click.echo(f"NOT RECORDED: {unrecorded['count']} unit(s) the store refused{more}: " + ", ".join(shown[:10])
                   + (" ..." if len(shown) > 10 else ""))
    if s.get("fault"):
        click.echo(f"FAULTED: {s['fault']}")


def _fmt_score(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_site(site: dict) -> None:
    """Per camera: frames judged and dropped, tracks, incidents by kind, tracking scores."""
    kinds = ", ".join(f"{k} {n}" for k, n in site["incidents"].items())
    click.echo(f"site: {site['frames']} frames judged, {site['dropped']} dropped, {site['tracks']} tracks, "
               f"{site['incidents_total']} incidents ({kinds})")
    for cam, c in site["cameras"].items():
        incidents = ", ".join(f"{k} {n}" for k, n in c["incidents"].items() if n) or "none"
        line = (f"  camera {cam}: {c['frames']} frames, {c['dropped']} dropped, {c['tracks']} tracks, "
                f"incidents {incidents}")
        t = c.get("tracking")
        if t:
            line += f" | tracking vs truth: MOTA {_fmt_score(t.get('mota'))}, IDF1 {_fmt_score(t.get('idf1'))}"
        click.echo(line)


def finish(summary: dict, as_json: bool) -> None:
    """Print the summary; a run that did not complete cleanly is an error (exit 1) naming where to look."""
    summary = {**summary, "audit_head": anchor_of_db(summary["db"])}  # the chain head, published (#15)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        print_summary(summary)
    if summary.get("state") == "faulted":
        unrecorded = (summary.get("unrecorded") or {}).get("count")
        raise RunFaulted(
            f"run {summary['run_id']} FAULTED: {summary.get('fault') or 'a pipeline stage failed'}"
            f"{f'; {unrecorded} unit(s) not recorded' if unrecorded else ''}; "
            f"see {summary['summary_file'] or summary['db']}")
    if not summary["complete"]:
        raise click.ClickException(
            f"run {summary['run_id']} did not complete cleanly (state {summary['state']}, "
            f"{summary['verdicts']['not_inspected']} not inspected, {summary['store_failed']} store failure(s)); "
            f"see {summary['summary_file'] or summary['db']}")
