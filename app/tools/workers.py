"""`riverguard serve --workers N`: N service processes sharing one port (``SO_REUSEPORT``).

The kernel spreads connections over the processes. Each is a full service: it scores REST
and Kafka traffic (the Kafka workers of all of them form one consumer group), and each is a
learner candidate — one leads and learns, the others load its model bundles — so N processes
decide alike. This parent only supervises: it forwards SIGTERM/SIGINT, and when one process
exits it stops the others and exits with that code (let the supervisor above restart it).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from app.tools.embedded import die_with_parent

RIVERGUARD = Path(sys.executable).with_name("riverguard")


CONSOLE_SECRET = "RIVERGUARD_CONSOLE__SECRET"  # noqa: S105 (the variable's name, not a secret)


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The workers' settings: one port, and one console secret for all of them.

    The kernel sends each connection to any worker, so a console session signed by one must
    be valid in every other: when no secret is configured this parent draws one for them all
    (sessions then end when this parent restarts, as with one process).

    >>> env = worker_env({})
    >>> env["RIVERGUARD_REUSE_PORT"], len(env[CONSOLE_SECRET]) >= 43
    ('true', True)
    >>> worker_env({CONSOLE_SECRET: "set"})[CONSOLE_SECRET]
    'set'
    """
    env = {**environ, "RIVERGUARD_REUSE_PORT": "true"}
    env.setdefault(CONSOLE_SECRET, secrets.token_urlsafe(32))
    return env


def run_workers(count: int, grace: float = 30.0) -> int:
    """Run ``count`` `riverguard serve` processes on the configured port until one exits."""
    env = worker_env(os.environ)
    children = [
        subprocess.Popen([str(RIVERGUARD), "serve"], env=env, preexec_fn=die_with_parent())
        for _ in range(count)
    ]
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
        code = next(child.returncode for child in children if child.poll() is not None)
        if not stopping:
            forward(signal.SIGTERM, None)  # one died: stop the rest, exit with its code
        deadline = time.monotonic() + grace
        for child in children:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return 0 if stopping else (code or 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
