"""`riverguard serve` (or any ASGI command) as a child process: started, awaited, stopped by PID.

The one helper the demo, the end-to-end tests and the benchmarks use. The child gets SIGTERM
when the thread that started it dies, so an interrupted run never leaves a service behind;
readiness is waited for with a deadline, and a child that exits during start-up fails with
the tail of its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.tools.embedded import StackUrls, die_with_parent, free_port

RIVERGUARD = Path(sys.executable).with_name("riverguard")


def stack_env(urls: StackUrls, api_key: str) -> dict[str, str]:
    """The settings that point a service at ``urls``, with one key holding every scope."""
    env = {"RIVERGUARD_API_KEYS": f"{api_key}=score|label|review|admin"}
    for name, value in (
        ("RIVERGUARD_KAFKA_BOOTSTRAP", urls.kafka_bootstrap),
        ("RIVERGUARD_REDIS_URL", urls.redis_url),
        ("RIVERGUARD_DATABASE_URL", urls.database_url),
    ):
        if value is not None:
            env[name] = value
    if urls.redis_cluster:
        env["RIVERGUARD_REDIS_CLUSTER"] = "true"
    return env


@dataclass
class ServiceProcess:
    """A child process serving HTTP on ``port``; ``env`` adds to a RIVERGUARD_-free environ.

    ``command`` may say ``{port}`` where the port goes (the service itself reads
    ``RIVERGUARD_PORT``).
    """

    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    command: Sequence[str] = (str(RIVERGUARD), "serve")
    ready_path: str = "/readyz"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, log_path: Path | None = None, timeout: float = 90) -> ServiceProcess:
        """Start the child and return once ``ready_path`` answers 200 (or raise)."""
        self.launch(log_path)
        self.wait_ready(timeout)
        return self

    def launch(self, log_path: Path | None = None) -> ServiceProcess:
        """Start the child without waiting (several start together; then :meth:`wait_ready`).

        Call it from a thread that outlives the child: the child is stopped when it ends.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
        env.update({"RIVERGUARD_PORT": str(self.port), "RIVERGUARD_LOG_LEVEL": "WARNING"})
        env.update(self.env)
        if log_path is None:  # a failed start must still say why
            handle, name = tempfile.mkstemp(prefix="riverguard-service-", suffix=".log")
            os.close(handle)
            log_path = Path(name)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [part.replace("{port}", str(self.port)) for part in self.command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),  # never outlives an interrupted run
            )
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll until ``ready_path`` answers 200; fail with the log's tail if the child exits."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited during start-up:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the service was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-size:]

    def kill(self) -> None:
        """SIGKILL (a crash, for tests of what survives one)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)
