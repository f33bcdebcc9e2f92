"""Servers started by a command or a test never outlive it (``embedded.die_with_parent``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

PARENT = """
import subprocess, sys, time
from app.tools.embedded import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_child_is_stopped_when_its_parent_is_killed() -> None:
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    child = psutil.Process(child_pid)
    assert child.is_running() and child.ppid() == parent.pid
    os.kill(parent.pid, signal.SIGKILL)  # no cleanup code in the parent runs
    parent.wait(timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and child.is_running() and child.status() != "zombie":
        time.sleep(0.05)
    gone = not child.is_running() or child.status() == "zombie"
    if not gone:  # clean up before failing
        os.kill(child_pid, signal.SIGKILL)
    assert gone
