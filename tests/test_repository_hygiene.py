"""The locks match pyproject.toml, and no committed file points at a package index."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
