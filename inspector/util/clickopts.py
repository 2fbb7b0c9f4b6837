"""Options every command shares, so each speaks like its peers: ``--log-level``, ``--progress``
and ``--json``. Use them as decorators on click commands (and on the groups, for ``--log-level``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from inspector.util.logs import LEVELS, setup_logging
from inspector.util.progress import MODES, Progress, make_progress

F = TypeVar("F", bound=Callable[..., Any])


def _set_level(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        setup_logging(value)
        ctx.meta["inspector.log_level"] = value


def log_level_option(f: F) -> F:
    """``--log-level``: applied as soon as it is parsed (stderr; warnings by default)."""
    return click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default=None,
                        expose_value=False, is_eager=True, callback=_set_level,
                        help="Log level on stderr (default: warning, or $INSPECTOR_LOG_LEVEL).")(f)


def progress_option(f: F) -> F:
    """``--progress auto|bar|json|none`` -> a ``progress: Progress`` argument for the command."""
    def convert(_ctx: click.Context, _param: click.Parameter, value: str) -> Progress:
        return make_progress(value)

    return click.option("--progress", "progress", type=click.Choice(MODES), default="auto", show_default=True,
                        callback=convert,
                        help="Progress on stderr: a bar on a terminal (auto), always a bar, JSON lines "
                             "for programs, or none.")(f)


def json_option(f: F) -> F:
    """``--json``: the result as JSON alone on stdout (set-up, progress and logs go to stderr)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON alone on stdout (progress and logs go to stderr).")(f)


def current_log_level(default: str = "warning") -> str:
    """The ``--log-level`` given on this command line (for child processes and the log file)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if "inspector.log_level" in ctx.meta:
            return ctx.meta["inspector.log_level"]
        ctx = ctx.parent
    return default


def log_level_everywhere(group: click.Group) -> None:
    """Give every command under ``group`` (the group included) the ``--log-level`` option unless it
    has one: a level may then be given where a user naturally types it, before or after the command."""
    if not any(p.name == "log_level" for p in group.params):
        log_level_option(group)  # click's option decorator also takes a Command: it appends the option
    for cmd in group.commands.values():
        if isinstance(cmd, click.Group):
            log_level_everywhere(cmd)
        elif not any(p.name == "log_level" for p in cmd.params):
            log_level_option(cmd)
