"""The documentation's service examples follow the convention the e2e test runs them by."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import docs_examples

DOCS = docs_examples.documents()


def test_the_readme_and_the_reference_have_service_examples() -> None:
    with_examples = {path.name for path in DOCS if docs_examples.service_examples(path)}
    assert {"README.md", "api.md", "decisions.md", "rules.md"} <= with_examples


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_service_call_says_its_status(path: Path) -> None:
    blocks = docs_examples.service_examples(path)
    if blocks:  # a reader may start here: the file's first example says where RG and KEY come from
        first = blocks[0][0]
        assert first.is_paste, f"{path.name}:{first.line}: start from `export RG=... KEY=...`"
    for block in blocks:
        for command in block:
            where = f"{path.name}:{command.line}"
            if command.is_curl:
                assert command.expected is not None, f"{where}: a curl without `# → NNN`"
                assert "$RG" in command.text, f"{where}: call the service at $RG"
            else:  # only shell state: a block that calls the service runs nothing else
                head = command.text.lstrip().split("=", 1)[0]
                assert command.is_paste or head.isidentifier(), f"{where}: {command.text!r}"


def test_statements_join_quoted_bodies_and_continuations() -> None:
    block = "curl -s $RG/a -d '{\n  \"x\": 1}'   # → 201\ncurl -s $RG/b \\\n  -H 'a: b'   # → 404\n"
    commands = docs_examples.statements(block, 1)
    assert [(c.line, c.expected) for c in commands] == [(1, 201), (3, 404)]
    assert all(c.is_curl for c in commands)


def test_the_pasted_line_is_replaced_by_the_real_address_and_key() -> None:
    block = docs_examples.statements("export RG=http://x KEY=rg_...\ncurl -s $RG/h   # → 200\n", 1)
    text, curls = docs_examples.script([block], "http://127.0.0.1:5", "k'ey")
    assert "export RG=http://127.0.0.1:5 KEY='k'\"'\"'ey'" in text and "rg_..." not in text
    assert [c.expected for c in curls] == [200]
