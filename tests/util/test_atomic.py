import json
import os
import stat

import pytest

from inspector.util.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic


def test_write_text_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    write_text_atomic(p, "nëw", durable=True)
    assert p.read_text(encoding="utf-8") == "nëw"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]


def test_mode_is_applied(tmp_path):
    p = write_bytes_atomic(tmp_path / "secret", b"x", mode=0o600)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_failed_write_keeps_old_content_and_cleans_up(tmp_path):
    p = tmp_path / "m.json"
    write_json_atomic(p, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(p, {"a": float("nan")})  # NaN is refused before anything is replaced
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "nope" / "a.txt", "x")
