"""installers/linux/install.sh into a temporary prefix: the systemd unit (checked by systemd-analyze
verify), the desktop entry (desktop-file-validate), the secrets file; no root, no systemctl.

The script runs for real; only the package installation is skipped by pointing --venv at the
environment running these tests (it has Inspector installed), which keeps the test fast.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "installers" / "linux" / "install.sh"
VENV = Path(sys.prefix)


def install(prefix: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--prefix", str(prefix), "--venv", str(VENV), "--no-systemctl",
                           *args], capture_output=True, text=True, timeout=120)


def unit_settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    if not (VENV / "bin" / "inspector").exists():
        pytest.skip(f"the test environment {VENV} has no bin/inspector (run installers/setup.sh)")
    p = tmp_path_factory.mktemp("prefix")
    r = install(p, "--data-dir", "/var/lib/inspector")
    assert r.returncode == 0, r.stderr
    return p


def test_the_unit_is_templated_with_the_prefix_and_hardened(prefix):
    unit = prefix / "lib" / "systemd" / "system" / "inspector-station.service"
    text = unit.read_text()
    assert "@" not in text.replace("@...@", "")  # every field filled in
    s = unit_settings(unit)
    exec_start = s["ExecStart"][0].split()
    assert exec_start[0] == str(VENV / "bin" / "inspector") and Path(exec_start[0]).exists()
    assert exec_start[1:3] == ["run", "--headless"]
    assert exec_start[exec_start.index("--config") + 1] == str(prefix / "etc" / "inspector" / "station.yaml")
    assert exec_start[exec_start.index("--registry") + 1] == str(prefix / "share" / "inspector" / "models")
    want = {"Type": "notify", "User": "inspector", "Restart": "on-failure", "ProtectSystem": "strict",
            "ReadWritePaths": "/var/lib/inspector", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
            "StateDirectory": "inspector", "StateDirectoryMode": "0700", "UMask": "0077",
            "EnvironmentFile": f"-{prefix}/etc/inspector/inspector.env"}
    assert {k: s.get(k, [None])[0] for k in want} == want
    assert int(s["WatchdogSec"][0]) > 0


def test_systemd_analyze_verify_accepts_the_unit(prefix):
    analyze = shutil.which("systemd-analyze") or ("/usr/bin/systemd-analyze"
                                                  if Path("/usr/bin/systemd-analyze").exists() else None)
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (installers/test.sh installs systemd as root; "
                    "else apt-get install systemd)")
    unit = prefix / "lib" / "systemd" / "system" / "inspector-station.service"
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for settings it ignores: every line about our unit is a problem
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if "inspector-station" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
    # and it does catch a broken unit, so the check above means something
    bad = prefix / "bad" / "inspector-station.service"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    r = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "inspector-station" in r.stdout + r.stderr


def test_desktop_entry_and_icon(prefix):
    entry = prefix / "share" / "applications" / "inspector.desktop"
    icon = prefix / "share" / "icons" / "hicolor" / "scalable" / "apps" / "inspector.svg"
    text = entry.read_text()
    assert f"Exec={VENV}/bin/inspector gui --config {prefix}/etc/inspector/station.yaml" in text
    assert f"Icon={icon}" in text and icon.is_file()
    validate = shutil.which("desktop-file-validate")
    if validate is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    r = subprocess.run([validate, str(entry)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_secrets_file_is_private_and_kept_on_reinstall(prefix):
    env = prefix / "etc" / "inspector" / "inspector.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    env.write_text("INSPECTOR_MES_TOKEN=s3cret\n")
    r = install(prefix, "--data-dir", "/var/lib/inspector")
    assert r.returncode == 0, r.stderr
    assert env.read_text() == "INSPECTOR_MES_TOKEN=s3cret\n"
    assert (prefix / "share" / "inspector" / "models" / "index.json").is_file()


def test_headless_install_with_another_user_has_no_desktop_entry(tmp_path):
    if not (VENV / "bin" / "inspector").exists():
        pytest.skip(f"the test environment {VENV} has no bin/inspector")
    r = install(tmp_path, "--headless", "--user", "qc-station", "--data-dir", "/srv/inspector")
    assert r.returncode == 0, r.stderr
    s = unit_settings(tmp_path / "lib" / "systemd" / "system" / "inspector-station.service")
    assert s["User"] == ["qc-station"] and s["ReadWritePaths"] == ["/srv/inspector"]
    assert not (tmp_path / "share" / "applications").exists()


@pytest.mark.parametrize("args, message", [
    ([], "give --prefix"),
    (["--prefix", "PFX", "--user", "Bad User"], "not a valid user name"),
    (["--prefix", "PFX", "--data-dir", "relative"], "absolute path"),
])
def test_bad_arguments_say_what_is_wrong(tmp_path, args, message):
    args = [a.replace("PFX", str(tmp_path)) for a in args]
    r = subprocess.run(["bash", str(SCRIPT), *args, "--no-systemctl"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr
