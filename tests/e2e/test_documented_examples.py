"""Every service example of README.md and docs/ runs, in order, against a fresh `riverguard dev`,
and answers the status its `# → NNN` says (see tests/docs_examples.py for the convention); the
README's "Try it on your own data" commands run as pasted on a generated export."""

from __future__ import annotations

import csv
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from simulator.config import SimConfig
from simulator.generate import simulate
from tests import docs_examples
from tests.service_process import RIVERGUARD, ServiceProcess

PASTE = re.compile(r"export RG=(\S+) KEY=(\S+)")


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`riverguard dev` as a user starts it: embedded servers, a fresh key; its pasted line."""
    log = tmp_path_factory.mktemp("dev") / "dev.log"
    service = ServiceProcess({}, command=(str(RIVERGUARD), "dev"))
    service.start(log_path=log, timeout=180)
    try:
        found = PASTE.search(log.read_text())
        assert found, service.log_tail()
        assert found.group(1) == service.url
        yield found.group(1), found.group(2)
    finally:
        assert service.stop() in (0, 143, -15), service.log_tail()  # SIGTERM: 143


@pytest.mark.slow
def test_every_documented_example_answers_the_documented_status(
    dev: tuple[str, str], tmp_path: Path
) -> None:
    address, key = dev
    ran = 0
    for path in docs_examples.documents():
        blocks = docs_examples.service_examples(path)
        if not blocks:
            continue
        text, curls = docs_examples.script(blocks, address, key)
        out = tmp_path / path.stem
        out.mkdir()
        done = subprocess.run(
            ["bash", "-c", text],
            env={"PATH": "/usr/bin:/bin", "RG_OUT": str(out), "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        statuses = (out / "statuses").read_text().split()
        assert len(statuses) == len(curls), (path.name, statuses)
        for number, (command, status) in enumerate(zip(curls, statuses, strict=True), 1):
            body = (out / f"{number}.body").read_text(errors="replace")[:600]
            where = f"{path.name}:{command.line}"
            assert int(status) == command.expected, f"{where}: {status}\n{command.text}\n{body}"
        ran += len(curls)
    assert ran >= 30


def _own_data_commands() -> list[str]:
    """README's "Try it on your own data" block, as pasted (comments dropped)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Try it on your own data", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _handbook_export(path: Path) -> tuple[int, int]:
    """A Fraud Detection Handbook export of 20 simulated days ending yesterday."""
    start = (datetime.now(UTC) - timedelta(days=21)).replace(microsecond=0)
    stream = list(simulate(SimConfig(seed=31, start=start, days=20, cards=40)))
    fraud = {r.transaction_id for r in stream if r.kind == "label" and r.data["is_fraud"]}
    rows = [r for r in stream if r.kind == "transaction"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID",
                         "TX_AMOUNT", "TX_FRAUD"])  # fmt: skip
        for r in rows:
            at = r.event_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow([r.transaction_id, at, r.data["card_id"], r.data["merchant_id"],
                             r.data["amount"], int(r.transaction_id in fraud)])  # fmt: skip
    return len(rows), sum(1 for r in rows if r.transaction_id in fraud)


@pytest.mark.slow
def test_try_it_on_your_own_data_runs_as_pasted(dev: tuple[str, str], tmp_path: Path) -> None:
    address, key = dev
    commands = _own_data_commands()
    assert commands[0] == "make install" and "make dev" in commands  # the set-up steps
    transactions, frauds = _handbook_export(tmp_path / "transactions.csv")
    models = httpx.get(f"{address}/v1/models", headers={"X-API-Key": key}).json()["models"]
    before = min(int(m["learned"]) for m in models)  # the examples above posted labels too
    outputs = []
    for command in commands:
        if command.startswith("make "):
            continue  # this test runs inside the installed checkout, beside `riverguard dev`
        line = command.replace(".venv/bin/riverguard", str(RIVERGUARD)).replace(
            "http://127.0.0.1:8000", address
        )
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "KEY": key,
                                                           "HOME": str(tmp_path)})  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        outputs.append(" ".join(done.stdout.split()))
    imported, evaluated, backfilled = outputs
    assert f"rows read {transactions:,}" in imported and "rejected 0" in imported
    assert "AP per week" in evaluated and "at budgets" in evaluated
    labels = int(imported.split(" labels ")[1].split()[0].replace(",", ""))
    pending = int(imported.split("labels not yet known ")[1].split()[0].replace(",", ""))
    assert labels + pending == transactions and labels > 0  # the last 7 days' are not known yet
    records = sum(1 for _ in (tmp_path / "history.jsonl").open())
    assert records == transactions + labels
    assert f"delivered {records:,} records" in backfilled
    learned = int(backfilled.split("the scorer's models hold ")[1].split()[0].replace(",", ""))
    assert learned == before + labels and frauds > 0
