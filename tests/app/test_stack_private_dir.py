"""The embedded PostgreSQL when the installation sits in a directory only root can enter.

PostgreSQL refuses to run as root, so a root parent runs it as an unprivileged account, which
cannot traverse a mode-0700 directory such as /root. The tests copy the installed ``pgserver``
package into such a directory and point the stack at it, the way a clone under /root looks.
Run as another user, the scenario does not apply and the stack simply has to start.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from app.tools.embedded import STACK_DIR_PREFIX, EmbeddedStack, EmbeddedStackError

AS_ROOT = os.geteuid() == 0


def _installed(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _directory(mode: int) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rg-test-"))
    path.chmod(mode)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def private_pgserver() -> Iterator[Path]:
    """A copy of the installed pgserver (and the shared libraries its wheel keeps beside it)
    inside a mode-0700 directory."""
    for private in _directory(0o700):
        source = _installed("pgserver")
        site = private / "site-packages"
        shutil.copytree(source, site / source.name, ignore=shutil.ignore_patterns("include"))
        libs = source.with_name(f"{source.name}.libs")
        if libs.is_dir():
            shutil.copytree(libs, site / libs.name)
        yield site / source.name


@pytest.fixture
def open_temp() -> Iterator[Path]:
    """Where the stack makes its own directory: one every user can traverse, like /tmp."""
    yield from _directory(0o755)


@pytest.fixture
def private_temp() -> Iterator[Path]:
    yield from _directory(0o700)


def _new_children(me: psutil.Process, before: set[int]) -> list[psutil.Process]:
    return [child for child in me.children(recursive=True) if child.pid not in before]


def _assert_copy_is_safe(install: Path) -> None:
    """Root-owned and writable by nobody else: the unprivileged account executes it."""
    paths = [install, *install.rglob("*")]
    assert any(path.name == "postgres" for path in paths)
    for path in paths:
        info = path.lstat()
        assert info.st_uid == 0, path
        assert not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH), path


@pytest.mark.slow
async def test_postgres_starts_from_a_directory_only_root_can_enter(
    private_pgserver: Path, open_temp: Path
) -> None:
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    stack = EmbeddedStack(fast_postgres=True, pgserver_dir=private_pgserver, temp_dir=open_temp)
    try:
        urls = stack.start(kafka=False, redis=False, postgres=True)
        assert urls.database_url is not None
        started = _new_children(me, before)
        assert started, "the postmaster and its workers are children of this process"
        (root,) = open_temp.glob(f"{STACK_DIR_PREFIX}*")
        if AS_ROOT:  # the case this test is about
            assert all(child.uids().real != 0 for child in started)
            _assert_copy_is_safe(root / "postgres-install")
        conn = await asyncpg.connect(urls.database_url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        stack.close()
    _gone, alive = psutil.wait_procs(started, timeout=15)
    assert alive == [], f"still running: {[p.pid for p in alive]}"
    assert list(open_temp.iterdir()) == [], "the stack's directory was not removed"


@pytest.mark.slow
def test_an_unreachable_temp_dir_as_root_says_what_to_do(
    private_pgserver: Path, private_temp: Path
) -> None:
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    stack = EmbeddedStack(fast_postgres=True, pgserver_dir=private_pgserver, temp_dir=private_temp)
    try:
        if AS_ROOT:
            with pytest.raises(EmbeddedStackError) as failure:
                stack.start(kafka=False, redis=False, postgres=True)
            message = str(failure.value)
            assert "TMPDIR" in message and "RIVERGUARD_DATABASE_URL" in message
        else:  # the directory is this user's own: nothing stands in the way
            assert stack.start(kafka=False, redis=False, postgres=True).database_url
    finally:
        stack.close()
    assert _new_children(me, before) == []
    assert list(private_temp.iterdir()) == [], "the stack's directory was not removed"


@pytest.mark.slow
def test_riverguard_stack_prints_the_advice_without_a_traceback(private_temp: Path) -> None:
    riverguard = Path(sys.executable).with_name("riverguard")
    process = subprocess.Popen(
        [str(riverguard), "stack"],
        env={**os.environ, "TMPDIR": str(private_temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if AS_ROOT:
            _out, errors = process.communicate(timeout=120)
            assert process.returncode == 1
            assert "RIVERGUARD_DATABASE_URL" in errors and "Traceback" not in errors
        else:  # the directory is this user's own: the stack runs until stopped
            assert process.stdout is not None
            assert process.stdout.readline().startswith("export ")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert list(private_temp.iterdir()) == [], "the stack's directory was not removed"
