"""The data folder is private to the station's user: folders 0700, files 0600, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat

import numpy as np
import pytest

from inspector.store.clips import ClipWriter
from inspector.store.db import open_db
from inspector.store.images import ImageStore
from inspector.util.atomic import make_private_dirs, tighten
from inspector.util.logs import _drop_ours, add_log_file


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def loose_umask(request):
    old = os.umask(request.param)
    yield
    os.umask(old)


def test_private_dirs_are_0700_whatever_the_umask(tmp_path, loose_umask):
    d = make_private_dirs(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == mode(d) == 0o700


def test_tighten_drops_group_and_other_bits_and_reports_the_old_mode(tmp_path):
    p = tmp_path / "f"
    p.write_text("x")
    os.chmod(p, 0o644)
    assert tighten(p, 0o600) == 0o644
    assert mode(p) == 0o600
    assert tighten(p, 0o600) is None  # nothing left to do: said once


def test_a_new_database_and_its_wal_files_are_private(tmp_path, loose_umask):
    path = tmp_path / "data" / "inspector.sqlite"
    conn = open_db(path)
    conn.execute("CREATE TABLE t (x)")  # writes: the -wal and -shm files exist now
    try:
        assert mode(path.parent) == 0o700
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert mode(p) == 0o600, p
    finally:
        conn.close()


def test_an_old_world_readable_store_is_tightened_on_open_and_said_once(tmp_path, caplog):
    data = tmp_path / "data"
    path = data / "inspector.sqlite"
    open_db(path).close()
    os.chmod(data, 0o755)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="inspector.store.db"):
        open_db(path).close()
        open_db(path).close()
    assert mode(data) == 0o700 and mode(path) == 0o600
    said = [r for r in caplog.records if "tightened" in r.getMessage()]
    assert len(said) == 1 and "755 -> 700" in said[0].getMessage()


def test_images_and_clips_are_private(tmp_path, loose_umask):
    store = ImageStore(tmp_path / "images")
    _sha, rel = store.put(np.zeros((8, 8), np.uint8))
    assert mode(store.path(rel)) == 0o600
    assert mode(store.path(rel).parent) == mode(tmp_path / "images") == 0o700
    w = ClipWriter(tmp_path / "clips", fps=5)
    for _ in range(3):
        w.add(np.zeros((16, 16, 3), np.uint8))
    clip = w.finish()
    assert mode(tmp_path / "clips" / clip.path) == 0o600
    assert mode(tmp_path / "clips") == mode((tmp_path / "clips" / clip.path).parent) == 0o700


def test_the_log_file_is_private(tmp_path, loose_umask):
    root = logging.getLogger()
    try:
        path = add_log_file(tmp_path / "data")
        logging.getLogger("t").warning("hello")
        assert mode(path) == 0o600 and mode(path.parent) == 0o700
    finally:
        _drop_ours(root, "file")
