"""Whether `inspector run` / `demo` / `gui` open the operator app, and opening it.

The GUI is loaded by name: inspector.cli must not import inspector.gui or Qt (import-linter
layers), so the headless commands work on a station installed without the `gui` extra.
"""

from __future__ import annotations

import sys

import click

from inspector.cli.run_summary import finish

# Qt platforms that draw nowhere a person can see: a window there would wait for nobody.
_INVISIBLE_QPA = ("offscreen", "minimal")


def gui_possible(force: bool = False) -> tuple[bool, str]:
    """Whether the GUI can open here, and if not why: a display (DISPLAY / WAYLAND_DISPLAY, or a Qt
    platform a person can see in QT_QPA_PLATFORM, such as eglfs / linuxfb on panel PCs; not
    offscreen, unless ``force``) and PySide6."""
    import importlib.util
    import os

    from inspector.station.station import display_available

    qpa = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if not (force or display_available() or (qpa and qpa not in _INVISIBLE_QPA)):
        if qpa:
            return False, f"no display (Qt platform {qpa!r} draws nowhere visible; --gui opens the app anyway)"
        return False, "no display (DISPLAY / WAYLAND_DISPLAY / QT_QPA_PLATFORM not set)"
    if importlib.util.find_spec("PySide6") is None:
        return False, "PySide6 is not installed (pip install 'inspector-station[gui]')"
    return True, ""


def want_gui(headless: bool, as_json: bool, force: bool = False) -> bool:
    """GUI unless --headless or --json (stdout is then a JSON document for a script); a one-line note
    on stderr when the GUI was wanted but cannot open. --gui with --headless or --json is refused."""
    if force and (headless or as_json):
        raise click.UsageError("--gui cannot be combined with --headless or --json")
    if headless or as_json:
        return False
    ok, why = gui_possible(force)
    if not ok:
        if force:
            raise click.ClickException(f"--gui: the operator app cannot open: {why}")
        click.echo(f"inspector: running headless: {why}", err=True)
    return ok


def _gui_app():
    import importlib

    try:
        return importlib.import_module("inspector.gui.app")
    except ImportError as e:
        raise click.ClickException(f"the GUI needs PySide6 (pip install 'inspector-station[gui]'): {e}") from None


def open_station_gui(cfg, **kwargs) -> tuple[int, dict | None]:
    """The operator app with the station started in it; its exit code and the run summary (if any)."""
    from inspector.config import config_hash

    return _gui_app().run_station_gui(cfg, config_hash(cfg), autostart=True, **kwargs)


def finish_gui(result: tuple[int, dict | None]) -> None:
    code, summary = result
    if summary is not None:
        finish(summary, False)
    if code:
        sys.exit(code)


def open_gui(cfg, **kwargs) -> int:
    """The operator app (`inspector gui`); its exit code."""
    from inspector.config import config_hash

    return int(_gui_app().run_gui(cfg, config_hash(cfg), **kwargs))
