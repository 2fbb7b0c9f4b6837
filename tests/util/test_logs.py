import io
import logging

import click
import pytest
from click.testing import CliRunner

from inspector.util.clickopts import current_log_level, json_option, log_level_option, progress_option
from inspector.util.logs import add_log_file, setup_logging
from inspector.util.progress import JsonProgress


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_warnings_on_stderr_by_default_info_hidden():
    buf = io.StringIO()
    setup_logging(None, stream=buf)
    log = logging.getLogger("inspector.test")
    log.info("quiet")
    log.warning("loud")
    assert "loud" in buf.getvalue() and "quiet" not in buf.getvalue()


def test_log_file_gets_info_and_rerun_replaces_handlers(tmp_path):
    setup_logging("warning", stream=io.StringIO())
    setup_logging("warning", stream=io.StringIO())
    path = add_log_file(tmp_path)
    add_log_file(tmp_path)
    logging.getLogger("inspector.runtime").info("fell back to CPU")
    for h in logging.getLogger().handlers:
        h.flush()
    assert path == tmp_path / "logs" / "inspector.log"
    assert path.read_text().count("fell back to CPU") == 1  # one handler, not two
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_inspector_handler", None)]
    assert sorted(h._inspector_handler for h in ours) == ["file", "stderr"]


def test_click_options():
    @click.command()
    @log_level_option
    @progress_option
    @json_option
    def cmd(progress, as_json):
        click.echo(f"{type(progress).__name__} {as_json} {current_log_level()}")

    r = CliRunner().invoke(cmd, ["--log-level", "info", "--progress", "json", "--json"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"{JsonProgress.__name__} True info"
    r = CliRunner().invoke(cmd, ["--log-level", "loud"])
    assert r.exit_code != 0
