"""Run `riverguard serve` as a real child process for end-to-end tests (stopped by PID)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from app.tools import service_process as demo_service
from app.tools.embedded import die_with_parent, free_port

RIVERGUARD = Path(sys.executable).with_name("riverguard")
KEY = "e2e-key"


@dataclass
class ServiceProcess:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path, ready_timeout: float = 90) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
        env.update(
            {"RIVERGUARD_PORT": str(self.port), "RIVERGUARD_API_KEYS": f"{KEY}=score|label|admin"}
        )
        env.update(self.env)
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(RIVERGUARD), "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),  # never outlives an interrupted test run
            )
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        assert self.process is not None and self.log_path is not None
        demo_service.wait_ready(self.url, self.process, self.log_path, timeout)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)
