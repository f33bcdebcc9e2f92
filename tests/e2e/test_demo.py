"""A shortened `riverguard demo`: it runs the split layout (a learner beside a scorer), finishes,
prints the summary — REST latency beside the scorer's CPU per transaction, the champion beside
the model it is compared with, how long the replay waited for the scorer's models — and its
report holds every plot and agrees with GET /v1/models at the end of the run."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from app.tools import report

RIVERGUARD = Path(sys.executable).with_name("riverguard")
pytestmark = pytest.mark.slow
MARK = "RG_TEST_DEMO_MARK"  # not RIVERGUARD_*: the service helper drops those


def test_short_demo_writes_a_report_that_agrees_with_the_service(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
    env[MARK] = uuid.uuid4().hex  # inherited by every process the demo starts
    started = time.time() - 1
    done = subprocess.run(
        # six days: the first fraud labels arrive (~400 labels, 20 frauds), so AP is defined
        [str(RIVERGUARD), "demo", "--days", "6", "--cards", "300", "--no-live", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "riverguard demo — summary" in done.stdout
    generated = re.search(r"generated ([\d,]+) transactions", done.stdout)
    summary = done.stdout.split("riverguard demo — summary", 1)[1]
    scored = re.search(r"transactions scored\s*│\s*([\d,]+)\s*│", summary)
    assert generated and scored, done.stdout[-3000:]
    assert scored.group(1) == generated.group(1)  # via Kafka and REST, one way of writing numbers
    # the layout users deploy: two service processes, a learner and a scorer
    pids = re.search(r"a learner \(pid (\d+)\)\s+beside\s+a\s+scorer\s+\(pid (\d+)", done.stdout)
    assert pids and pids.group(1) != pids.group(2), done.stdout[:3000]
    assert re.search(r"layout\s*│\s*learner \+ scorer: 2 processes", summary), summary
    # the REST share at a fixed rate, latency from each request's scheduled time, beside CPU
    latency = re.search(
        r"REST latency at 200 req/s \(open loop\)\s*│\s*p50 ([\d,.]+) ms, p99 ([\d,.]+) ms",
        summary,
    )
    assert latency and 0 < _float(latency.group(1)) <= _float(latency.group(2)), summary
    for per in ("scorer CPU per transaction", "learner CPU per label"):
        cpu = re.search(rf"{per}\s*│\s*([\d.]+) ms", summary)
        assert cpu and float(cpu.group(1)) > 0, (per, summary)
    # the champion beside blend (or, when blend is the champion, the stack) on the same labels
    versus = re.search(r"AP, champion (\w+) vs (\w+)\s*│\s*(0\.\d{3}) vs (0\.\d{3})", summary)
    assert versus, summary
    assert "blend" in (versus.group(1), versus.group(2)), summary
    # the replay waits for the scorer's models (else they score days of event time behind)
    held = re.search(r"replay held for the models\s*│\s*([\d,]+) times", summary)
    assert held, summary
    assert not re.search(r"It\s+stopped\s+waiting", done.stdout), done.stdout[-3000:]
    assert not re.search(r"\{'|\d{5,}", summary.split("generated at", 1)[0]), summary
    assert re.search(r"rejected by the API\s*│\s*0\s*│", summary), summary
    # the decision layer: budgets' realised rates, the demo's rule and block-listed card decided
    assert re.search(r"review rate \(budget 2\.0%\)\s*│\s*([\d.]+% of|warm-up not over)", summary)
    rule = re.search(r"rule big-ecom decided\s*│\s*(\d+)\s*│", summary)
    listed = re.search(r"block-listed card decided\s*│\s*(\d+)\s*│", summary)
    assert rule and listed, summary
    assert int(rule.group(1)) >= 1 and int(listed.group(1)) >= 1, summary
    html = out.read_text()
    for figure in report.FIGURES:
        assert f"id='fig-{figure}'" in html, figure
        assert re.search(
            rf"id='fig-{figure}' alt='{figure}' src='data:image/png;base64,[A-Za-z0-9+/=]{{200,}}'",
            html,
        )
    rows = re.findall(
        r"<tr>(<td>.*?</td>)</tr>", html.split("id='models'", 1)[1].split("</table>", 1)[0]
    )
    names = [re.findall(r"<td>(.*?)</td>", row)[0] for row in rows]
    assert len(rows) >= 3 and {versus.group(1), versus.group(2)} <= set(names), names
    for row in rows:
        cells = re.findall(r"<td>(.*?)</td>", row)
        auc_service, auc_report, ap_service, ap_report = cells[3:7]
        assert auc_service == auc_report, cells
        assert ap_service == ap_report, cells
    deadline = time.monotonic() + 15  # servers' own children may take a moment to exit
    while (left := _started_by(env[MARK], started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"the demo left servers or a service behind: {_describe(left)}"


def _float(text: str) -> float:
    return float(text.replace(",", ""))


def _describe(pids: set[int]) -> list[str]:
    out = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            out.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:120]}")
    return out


def _started_by(mark: str, since: float) -> set[int]:
    """PIDs of live processes the demo started: those that inherited its marker, and
    valkey-server processes of this virtualenv started since (valkey overwrites its environment
    block with its process title). Other runs on the machine are not the demo's."""
    ours = str(Path(sys.executable).parent.parent)
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.info["cmdline"] or [])
            valkey = "valkey-server" in line and ours in line and proc.info["create_time"] >= since
            if valkey or proc.environ().get(MARK) == mark:
                found.add(proc.info["pid"])
    return found
