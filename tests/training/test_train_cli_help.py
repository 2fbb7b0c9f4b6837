"""`inspector-train`: every command and option explains itself."""

import click
import pytest
from click.testing import CliRunner

from training.cli import main


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)], ids=" ".join)
def test_every_training_command_explains_itself(path):
    assert CliRunner().invoke(main, [*path, "--help"]).exit_code == 0
    cmd = dict(_commands(main))[path]
    assert cmd.help and len(cmd.help.strip()) > 20
    assert all(p.help for p in cmd.params if isinstance(p, click.Option) and p.name != "help")
