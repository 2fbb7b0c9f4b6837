"""The hash-pinned lock files (installers/locks/) agree with pyproject.toml and with what setup.sh does.

Every dependency pyproject.toml declares (base and each extra the locks cover) is pinned with ``==``
to a version inside its declared range and carries at least one sha256; the locks agree with each
other; none holds the GUI build of OpenCV; torch / torchvision are hashed as the exact wheels served
on this machine's disk.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "installers" / "locks"
# lock file -> the extras of pyproject.toml it holds (besides the base dependencies)
EXTRAS = {"station": (), "gui": ("gui",), "train": ("train",), "dev": ("gui", "train", "dev")}
LOCAL_WHEELS = Path("/opt/pypi-more/files")


def parse_lock(path: Path) -> dict[str, tuple[str, set[str]]]:
    """``{canonical name: (version, {sha256, ...})}``; a line without ``==`` or hash fails the test."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req_text, *opts = line.split(" --")
        req = Requirement(req_text.strip())
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{path.name}: {req_text!r} is not pinned with =="
        hashes = {o.split(":", 1)[1] for o in opts if o.startswith("hash=sha256:")}
        assert hashes, f"{path.name}: {req.name} has no --hash"
        out[canonicalize_name(req.name)] = (spec[0].version, hashes)
    return out


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def locks() -> dict[str, dict[str, tuple[str, set[str]]]]:
    return {name: parse_lock(LOCKS / f"{name}.txt") for name in (*EXTRAS, "build")}


@pytest.mark.parametrize("lock_name", list(EXTRAS))
def test_every_declared_dependency_is_pinned_with_a_hash_inside_its_range(pyproject, locks, lock_name):
    declared = list(pyproject["dependencies"])
    for extra in EXTRAS[lock_name]:
        declared += pyproject["optional-dependencies"][extra]
    lock = locks[lock_name]
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in lock, f"{lock_name}.txt lacks {req.name} ({text}); run installers/locks/compile.sh"
        version, _ = lock[name]
        assert req.specifier.contains(version, prereleases=True), \
            f"{lock_name}.txt pins {req.name}=={version}, outside pyproject's {text}"


def test_locks_agree_with_each_other_and_with_the_tested_constraints(locks):
    seen: dict[str, tuple[str, str]] = {}
    for lock_name, lock in locks.items():
        for name, (version, _) in lock.items():
            if name in seen:
                assert seen[name][0] == version, f"{name}: {seen[name][1]}.txt pins {seen[name][0]}, " \
                                                 f"{lock_name}.txt pins {version}"
            seen[name] = (version, lock_name)
    constraints = {canonicalize_name(Requirement(line).name): str(Requirement(line).specifier)[2:]
                   for line in (REPO / "installers" / "constraints.txt").read_text().splitlines()
                   if line.strip() and not line.startswith("#")}
    for name, (version, lock_name) in seen.items():
        if name in constraints and name not in ("pip", "setuptools", "wheel"):
            assert constraints[name] == version, f"{lock_name}.txt pins {name}=={version}, " \
                                                 f"constraints.txt {constraints[name]}"


def test_no_lock_holds_the_gui_build_of_opencv(locks):
    for lock_name, lock in locks.items():
        assert "opencv-python" not in lock and "opencv-contrib-python" not in lock, lock_name
    assert "opencv-python-headless" in locks["station"]


@pytest.mark.parametrize("wheel", ["torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl",
                                   "torchvision-0.29.1-cp311-cp311-manylinux_2_28_x86_64.whl"])
def test_torch_hashes_are_those_of_the_local_wheels(locks, wheel):
    path = LOCAL_WHEELS / wheel
    if not path.is_file():
        pytest.skip(f"{path} is not on this machine (the local torch builds are served from there)")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    name = canonicalize_name(wheel.split("-")[0])
    assert h.hexdigest() in locks["train"][name][1] and h.hexdigest() in locks["dev"][name][1]


def test_setup_installs_from_the_locks_with_hashes_and_restamps_on_a_lock_change():
    setup = (REPO / "installers" / "setup.sh").read_text()
    assert "--require-hashes --no-deps -r $LOCKS/dev.txt" in setup
    assert "--require-hashes -r $LOCKS/build.txt" in setup
    assert "--no-deps --no-build-isolation -e ." in setup
    stamp = next(line for line in setup.splitlines() if line.startswith("WANT="))
    assert "$LOCKS/*.txt" in stamp
