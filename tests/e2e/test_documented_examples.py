"""Every service example of README.md and docs/ runs, in order, against a fresh `riverguard dev`,
and answers the status its `# → NNN` says (see tests/docs_examples.py for the convention)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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
