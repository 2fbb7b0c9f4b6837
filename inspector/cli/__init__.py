"""`inspector`: the station's command line.

One module per area: ``config_cmds`` (check, schema), ``run_cmds`` (demo, run, gui), ``analyze_cmds``
(recorded video), ``db_cmds``, ``mes_cmds``, ``users_cmds``, ``report_cmds`` (incident reports). Every
command takes ``--log-level`` (warnings on stderr by default); those that know a station's data folder
also log to ``<data folder>/logs/inspector.log``.
"""

from __future__ import annotations

import click

from inspector import __version__
from inspector.util.clickopts import log_level_everywhere
from inspector.cli.analyze_cmds import analyze
from inspector.cli.config_cmds import config
from inspector.cli.db_cmds import db
from inspector.cli.gui_launch import gui_possible as _gui_possible  # noqa: F401  (tests/gui/test_gui_cli.py)
from inspector.cli.mes_cmds import mes
from inspector.cli.report_cmds import report
from inspector.cli.run_cmds import demo, gui, run
from inspector.cli.users_cmds import users
from inspector.util.clickopts import current_log_level
from inspector.util.logs import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="inspector")
def main() -> None:
    """Inspector: a computer-vision inspection station.

    A station captures frames, runs an ensemble of detection models, applies rules and records one
    traceable decision per frame. Start with `inspector demo`; check a config with
    `inspector config check FILE`.
    """
    # Without --log-level: the default set-up (warnings on stderr, or $INSPECTOR_LOG_LEVEL); a
    # --log-level given after the sub-command replaces it when that is parsed.
    setup_logging(current_log_level(default="") or None)


for _cmd in (config, demo, run, gui, analyze, db, users, mes, report):
    main.add_command(_cmd)
log_level_everywhere(main)

__all__ = ["main"]

if __name__ == "__main__":
    main()
