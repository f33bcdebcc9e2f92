"""The shell examples of README.md and docs/*.md that call the service, as runnable scripts.

Convention (stated in the README): a fenced ``sh``/``bash`` block calls the service when it
uses ``$RG`` (the service's address); ``KEY`` is the key. Its first line is
``export RG=... KEY=...`` — the line ``riverguard dev`` prints — which a test replaces with
the address and key of its own fresh ``riverguard dev``. Every ``curl`` command of such a block
ends with ``# → NNN``, the HTTP status it answers. Blocks run in document order, README first,
then ``docs/*.md`` by name; the blocks of one file share one shell (a variable set in one
block is there in the next).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(?:sh|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPECTED = re.compile(r"#\s*→\s*(\d{3})\b")
PASTED = re.compile(r"^export RG=\S+( KEY=\S+)?")
# curl's own output goes to one file per call; its status to a list, in call order
PRELUDE = """set -u
RG_N=0
curl() {
  RG_N=$((RG_N + 1))
  command curl -sS -o "$RG_OUT/$RG_N.body" -w '%{http_code}\\n' "$@" >> "$RG_OUT/statuses"
}
"""


@dataclass(frozen=True)
class Command:
    """One shell statement of an example; ``expected`` is its annotated status (curl only)."""

    text: str
    line: int
    expected: int | None

    @property
    def is_curl(self) -> bool:
        return self.text.lstrip().startswith("curl ")

    @property
    def is_paste(self) -> bool:
        return PASTED.match(self.text.lstrip()) is not None


def documents() -> list[Path]:
    """README.md, then docs/*.md by name."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def statements(block: str, first_line: int) -> list[Command]:
    """The block split into complete shell statements (quotes and ``\\`` continue a line)."""
    out: list[Command] = []
    pending: list[str] = []
    start = first_line
    for number, line in enumerate(block.splitlines(), first_line):
        if not pending:
            start = number
        pending.append(line)
        text = "\n".join(pending)
        if line.rstrip().endswith("\\") or not _complete(text):
            continue
        pending = []
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        found = EXPECTED.search(text.splitlines()[-1])
        out.append(Command(text, start, int(found.group(1)) if found else None))
    if pending:
        raise ValueError(f"line {start}: an unfinished statement: {pending[0]!r}")
    return out


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:  # an open quote: the statement goes on
        return False
    return True


def service_examples(path: Path) -> list[list[Command]]:
    """The blocks of ``path`` that call the service, as statements."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        if "$RG" not in match.group(1) and not PASTED.match(match.group(1)):
            continue
        first_line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(statements(match.group(1), first_line))
    return blocks


def script(blocks: list[list[Command]], address: str, key: str) -> tuple[str, list[Command]]:
    """One bash script for a file's blocks, and its curl commands in the order they run."""
    lines = [PRELUDE]
    curls = []
    for block in blocks:
        for command in block:
            if command.is_paste:
                lines.append(f"export RG={shlex.quote(address)} KEY={shlex.quote(key)}")
                continue
            lines.append(command.text)
            if command.is_curl:
                curls.append(command)
    return "\n".join(lines) + "\n", curls
